"""Speed measurement: ``bench speed`` and the plain eager fp32 reference step it compares against."""
