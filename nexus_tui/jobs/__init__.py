"""Jobs: the box as a queue. Headless (no textual): the queue file, free slots, the runner that
starts queued runs when a slot is free, park/unpark, sweeps and notifications. The CLI
(`nexus queue|park|unpark|sweep`) and the dashboard's queue screen both work through it."""
