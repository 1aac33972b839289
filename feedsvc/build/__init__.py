"""Articles -> every served document: pure, no I/O, no clock.

`site.SiteBuilder` is the entry point (`site.build_site` for one build without reuse).
Nothing is imported here: `feedsvc.model` uses `gzparts` from below this package.
"""
