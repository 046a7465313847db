"""scorelib: the SCoRe reproduction suite."""
