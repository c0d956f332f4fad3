"""What operators do to jobs and queues: set priority, retry, move a FIFO queue's backlog in."""
