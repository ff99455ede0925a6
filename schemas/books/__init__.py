"""Local L2 order books (plain Python): the book itself (:mod:`.book`), venue checksums
(:mod:`.checksum`) and the per-venue sequencing that keeps a book in sync from a
snapshot plus diffs (:mod:`.keeper`)."""
