"""What outlives a process, in `state.path`: snapshot files, the parse cache, the lock."""
