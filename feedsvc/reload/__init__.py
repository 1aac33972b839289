"""A reload: read every source, build every document, swap the result in (reloader.py,
with the running sources in sources.py), and the one loop every trigger asks for one
(loop.py)."""
