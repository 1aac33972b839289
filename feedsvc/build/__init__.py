"""Articles -> every served document: pure, no I/O, no clock.

`site.SiteRenderer` is the entry point.
Nothing is imported here: `feedsvc.model` uses `gzparts` from below this package.
"""
