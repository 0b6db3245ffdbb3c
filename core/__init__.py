"""The platform kernel: primitives every app uses. Imports no app."""
