"""The built-in demo: synthetic multi-GT data (:mod:`.data`) and the three tiny trainings with their report
(:mod:`.run`, ``make demo``)."""
