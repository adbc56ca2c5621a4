"""Small utilities (private): files read without blocking or written atomically and on/off
flags (:mod:`.files`), byte sizes (:mod:`.units`), credential masking (:mod:`.redact`) and
progress bars (:mod:`.progress`).
"""
