"""Developer tools that are not part of the queueprio package."""
