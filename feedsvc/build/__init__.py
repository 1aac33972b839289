"""Articles -> every served document: pure, no I/O, no clock.

`site.SiteBuilder` is the entry point.
Nothing is imported here: `feedsvc.model` uses `gzparts` from below this package.
"""
