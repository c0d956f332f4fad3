"""The worker path: which copy of a job may run (``claim``), running it and recording how it ended (``run``).

A job can have several messages in the broker at once: aging, an admin's "set priority",
a raised duplicate or a recovery each publish a new copy under the same task id, and
leave the older copies where they are (AMQP can't take a message back). Each copy carries
its generation in the ``qp_generation`` header; the ledger row holds the newest generation.

Invariants, enforced by one conditional UPDATE per received copy (``JobQuerySet.claim``, called by ``worker.claim``):

1. A copy runs only if it wins the claim: the row is ``queued`` and the copy's generation
   is at least the row's (a republished copy can arrive before the row records its new
   generation, because the row is updated only once the broker confirmed the publish).
   Winning moves the row to ``started`` and records the generation as
   ``claimed_generation`` in the same statement, so at most one copy can ever win.
2. The winning copy may run again only when the broker redelivers *that* copy
   (``redelivered`` flag, after its worker died before acking; acks are late). A redelivered
   copy of another generation is stale.
3. Every other copy is stale: it is acknowledged and dropped without running
   (``celery.exceptions.Ignore``: no result is stored, the caller's result is untouched).
4. Only the claiming copy records the outcome (``JobQuerySet.finish`` matches
   ``claimed_generation``); a retry publishes a new generation and sets the row back to
   ``queued`` before the current run returns.
5. A job whose claiming copy keeps killing its worker (a poison message: a segfault, the OOM
   killer) is failed after ``QUEUEPRIO_MAX_WORKER_LOSSES`` redeliveries instead of looping
   forever; a job killed at its hard time limit is failed by ``PriorityTask.on_failure``.
6. A copy can arrive before its row is committed: a single submission sends it inside the
   ledger transaction and commits while the broker stores it (``broker.publish.FirstCopy``). A
   copy that finds no row at all claims again until the row appears, for at most
   ``QUEUEPRIO_CLAIM_WAIT_SECONDS``; a copy whose row never appears (its submission rolled
   back, and its caller got the error) is dropped like a stale one. A lost claim is judged
   stale only from a fresh read of the row (``JobQuerySet.standing``): the row can be
   committed between the claim's ``UPDATE`` and that read, and is then claimed again.
7. A message published without queueprio (an old client's ``send_task``) has no generation:
   it runs, and gets a ledger row when it starts.
8. Only the claiming copy touches the result backend. Celery's own ``task_track_started``
   writes ``STARTED`` *before* the task body (and so before the claim) runs: a stale copy, or
   the claiming copy redelivered after its job finished (its ack lost with a broker
   connection), would overwrite the job's stored ``SUCCESS`` with ``STARTED`` for good. So
   ``PriorityTask`` turns Celery's tracking off and ``worker.run.mark_started`` does it after the claim.
"""
