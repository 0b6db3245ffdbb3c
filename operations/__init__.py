"""Operations: the landing page, probes, metrics and the operators' site; reads both domains."""
