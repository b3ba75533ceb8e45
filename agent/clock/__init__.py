"""Time for evidence: which source disciplines the clock and how wrong it may be
(:mod:`.discipline`), and the keeper that stamps each segment with UTC, the clock's source and
the GPS track (:mod:`.keeper`)."""
