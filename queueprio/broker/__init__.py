"""The broker layer: what queueprio adds to a Celery message, queue declarations, the router,
publishing with confirms (first copies, batches, republished generations) and what Flower sees."""
