"""The processes of `feedsvc serve` besides granian's: the builder process (builder.py;
its socket to the workers in announcer.py, its carrying on after a restart in resume.py),
the main process's handle on it (supervisor.py), a serving worker's side of the link
(follower.py), and the processes a big reload spreads its work over, one per CPU
(cpus.py)."""
