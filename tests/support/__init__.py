"""Test support used by several test modules: a running server (`server`), processes
(`processes`), a scripted upstream (`upstream`), a WebSub hub (`hubstub`), SeaweedFS
(`seaweed`), shared inputs (`articles`, `posts`, `hostile`) and Prometheus samples
(`metrics`). Test modules import from here or from conftest, never from each other."""
