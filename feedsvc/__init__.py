"""feedsvc: publish RSS and Atom feeds from folders of front-matter articles."""

__version__ = "0.1.0"
