"""The worker path: which copy of a job may run (``claim``), running it and recording how it ended (``run``).

A job can have several messages in the broker at once: aging, an admin's "set priority", a
raised duplicate, a recovery, a retry each publish a new copy under the same task id, and leave
the older copies where they are (AMQP can't take a message back). Each copy is the job's own
stored Celery message (``broker.message``) with its generation and the job's token in its
headers; the ledger row holds the newest generation.

Invariants:

1. **A copy runs only if it wins the claim** (``JobQuerySet.claim``, one conditional UPDATE):
   the row is ``queued``, not expired, at a generation no newer than the copy's, and the copy
   carries the row's token. Winning moves the row to ``started``, records the generation as
   ``claimed_generation`` and gives the band place back, in one transaction: at most one copy
   can ever win. A republished copy can arrive before the row records its new generation (the
   row is updated once the broker confirmed the publish); it may claim too.
2. **Messages are not trusted over the ledger.** Band, priority, state and arguments' fate come
   from the row; only generation and token come from the message, and a copy without the
   token (forged, or published around queueprio) claims nothing. A message without a generation
   is adopted only when no row exists for its id (``external``).
3. **One run at a time** (``lease``). The claim takes a lease the run renews; a copy of the
   claiming generation (RabbitMQ redelivers an unacked message when a *connection* drops, on a
   consumer timeout, or when a process dies) runs only once the lease has passed, and only
   then counts as a worker loss. A run that can't renew stops its own process before its lease
   runs out. The worker that sees a pool process die ends that run's lease at once
   (``request``). What remains: a process paused for longer than the margin (a sixth of the
   lease) between checks, or clocks further apart than that, can overlap two runs by that much.
4. **Every other copy is stale**: acknowledged and dropped without running (``Ignore``: no
   result stored, the caller's untouched).
5. **Only the claiming run records the outcome** (``JobQuerySet.finish`` matches
   ``claimed_generation``). A run that hands the job on — ``retry()``, ``replace()``,
   ``Reject(requeue=True)`` — does so only after its body ended (``followup``), so a rollback
   of the body's own transaction can't undo the row while a message stands. ``Ignore`` ends
   ``ignored``, ``Reject(requeue=False)`` ``rejected``, a replace by a task outside queueprio
   ``replaced``.
6. **A poison message stops**: a job whose runs keep dying is failed after
   ``QUEUEPRIO_MAX_WORKER_LOSSES``; a job killed at its hard time limit is failed by
   ``PriorityTask.on_failure``.
7. **A copy can arrive before its row is committed**: a single submission sends it inside the
   ledger transaction (``broker.publish.FirstCopy``). A copy that finds no row claims again
   until the row appears, for at most ``QUEUEPRIO_CLAIM_WAIT_SECONDS``; one whose row never
   appears (its submission rolled back) is dropped. A lost claim is judged from a fresh read of
   the row (``JobQuerySet.standing``): the row can be committed between the claim's UPDATE and
   that read, and is then claimed again.
8. **Only the claiming copy touches the result backend.** Celery's ``task_track_started``
   writes ``STARTED`` before the task body (and so before the claim) runs: a stale copy would
   overwrite a finished job's ``SUCCESS``. ``PriorityTask`` turns Celery's tracking off and
   ``run.mark_started`` does it after the claim.
9. **Revoked and expired jobs never run** (``revoke``): the ledger records a revoke or an
   expiry, and the claim refuses a job that isn't ``queued`` or whose ``expires`` passed.
"""
