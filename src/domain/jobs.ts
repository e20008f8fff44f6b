/**
 * The jobs of the durable queue: one zod schema per kind (kind → payload), parsed when a job is
 * claimed, and every lock and dedupe key built here. No I/O.
 */
import { z } from "zod";

import { JobPayloadError } from "./errors.js";

/** The actor name of the app's own transitions and jobs. */
export const APP_ACTOR = "mission-control";

/** What a revision addresses: failing tests, a review, a maintainer's `/code <instructions>`, or the repository's own failing CI (`ci`). */
export const FeedbackSource = z.enum(["review", "tests", "command", "ci"]);
export type FeedbackSource = z.infer<typeof FeedbackSource>;

/** Payload of a job that starts or continues a run (`plan`, `code`, `revise`, `test`, `review`, `merge`). */
export const StageJobPayload = z.object({
  /** ISO time the trigger arrived: comments edited after it are not trusted. */
  triggeredAt: z.string().optional(),
  /** Who asked (GitHub login); the app itself is {@link APP_ACTOR}. */
  actor: z.string().optional(),
  /** For `revise`: what to address. */
  feedback: z
    .object({
      source: FeedbackSource,
      text: z.string().optional(),
      reviewId: z.number().int().optional(),
      requestedBy: z.string(),
      /** The commit the feedback is about (`ci`): the revision is skipped once the pull request's head moved on. */
      headSha: z.string().optional(),
      /** The failed checks' names (`ci`), for the rework-limit message. */
      checks: z.array(z.string()).optional(),
    })
    .optional(),
  /** A maintainer's notes from `/plan <notes>` or `/code <instructions>` (untrusted; sanitised before use). */
  notes: z.string().optional(),
});
export type StageJobPayload = z.infer<typeof StageJobPayload>;

/** Payload of `pr_closed`: the app's pull request was merged or closed unmerged. */
export const PrClosedPayload = z.object({ actor: z.string().optional(), merged: z.boolean().optional() });
/** Payload of `cancel`: `/stop`, or the issue closed by a person with write permission. */
export const CancelPayload = z.object({ actor: z.string().optional(), reason: z.string().optional() });
/** Payload of `tracking`: only re-render the tracking comment (a note was added while a stage runs). */
export const TrackingPayload = z.object({ actor: z.string().optional() });

/** The slash-commands (see `domain/slash-commands.ts`). */
export const CommandName = z.enum([
  "plan",
  "code",
  "test",
  "review",
  "status",
  "budget",
  "stop",
  "retry",
  "approve",
  "report",
  "help",
  "learn",
  "memory",
  "forget",
  "dismiss",
]);
export type CommandName = z.infer<typeof CommandName>;

/** Payload of a `command` job, built by the intake step from an accepted comment. */
export const CommandJobPayload = z.object({
  name: CommandName,
  args: z.string(),
  /** The comment that carried the command. */
  commentId: z.number().int(),
  /** Issue or PR the comment is on. */
  subjectNumber: z.number().int(),
  isPullRequest: z.boolean(),
  actor: z.string(),
  /** The actor's GitHub user id (absent in jobs queued before it was recorded). */
  actorId: z.number().int().optional(),
  /** The actor owns the organisation (checked by the intake step): may `/stop all` and lift it with `/retry`. */
  actorIsOrgOwner: z.boolean(),
  appSlug: z.string(),
  triggeredAt: z.string(),
  /**
   * The issue's title and body from the delivery, when the comment is on the issue itself (not
   * on a pull request): what the maintainer saw when commenting. `/plan`, `/code` and `/retry`
   * store it on the task when they start work; nothing else does.
   */
  issue: z.object({ title: z.string(), body: z.string() }).nullable().optional(),
  /** The comment was an @-mention in plain words (`domain/mentions.ts`) that the intake step routed to this command; `args` is its text. */
  mention: z.boolean().optional(),
});
export type CommandJobPayload = z.infer<typeof CommandJobPayload>;

/**
 * Payload of `answer`: a writer's @-mention in plain words on a pull request the app did not
 * open; the Reviewer answers it about that pull request in a comment (`pipeline/stages/answer.ts`).
 */
export const AnswerPayload = StageJobPayload.extend({
  /** The mention's text without the mention (untrusted; sanitised before use). */
  question: z.string(),
  /** The comment that asked: the answer's marker names it, so a retried job never posts twice. */
  commentId: z.number().int(),
});
export type AnswerPayload = z.infer<typeof AnswerPayload>;

/** The repository and issue (or pull request) a delivery is about, as its payload says. */
const Subject = z.object({
  owner: z.string(),
  repo: z.string(),
  number: z.number().int(),
  cloneUrl: z.string(),
  defaultBranch: z.string(),
});

/** The sender of a delivery. */
const Sender = z.object({ login: z.string(), id: z.number().int() });

/**
 * Payload of an `intake` job: what a webhook handler accepted from the payload alone (no
 * outbound request). The worker runs it first thing: the sender's permission, the repository
 * config, the 👀 reaction and the trigger-label decision, then the task and its first job.
 */
export const IntakePayload = z.discriminatedUnion("event", [
  z.object({
    /** `issues.labeled` / `issues.opened`: does this start a run? */
    event: z.literal("issue_trigger"),
    subject: Subject,
    sender: Sender,
    action: z.enum(["labeled", "opened"]),
    /** The label added (`labeled`), or every label of the new issue (`opened`). */
    labels: z.array(z.string()),
    issue: z.object({ title: z.string(), body: z.string() }),
    receivedAt: z.string(),
  }),
  z.object({
    /** `issue_comment.created` with a slash-command on its first line. */
    event: z.literal("comment"),
    subject: Subject,
    sender: Sender,
    commentId: z.number().int(),
    isPullRequest: z.boolean(),
    /** The comment's text (untrusted): the intake job parses its command with the app's slug. */
    body: z.string(),
    issue: z.object({ title: z.string(), body: z.string() }),
    receivedAt: z.string(),
  }),
  z.object({
    /** `issues.closed` by a person, on an issue with a live task. */
    event: z.literal("issue_closed"),
    subject: Subject,
    sender: Sender,
  }),
  z.object({
    /** `pull_request_review.submitted` by a person on the app's pull request. */
    event: z.literal("review"),
    subject: Subject,
    sender: Sender,
    state: z.enum(["changes_requested", "commented", "approved"]),
    reviewId: z.number().int(),
    /** Times this intake already waited for the issue's work in progress (a revision, a plan) to end (bounded). */
    waits: z.number().int().min(0).default(0),
  }),
  z.object({
    /**
     * `check_suite.completed` or `workflow_run.completed` that failed on the app's pull request
     * (`subject.number`). Runs in the issue's stage lane (`issueLockKey`), so never while a stage
     * of the issue runs.
     */
    event: z.literal("ci"),
    subject: Subject,
    sender: Sender,
    source: z.enum(["check_suite", "workflow_run"]),
    /** The commit the checks ran on. */
    headSha: z.string(),
    /** `failure` or `timed_out`; `success` or `neutral` for a task stopped on a CI failure the Coder found nothing to fix (a re-run passed). */
    conclusion: z.string(),
    /** Slug of the app that ran the checks (`github-actions` for a workflow run), when given. */
    appSlug: z.string().nullable(),
    checkSuiteId: z.number().int(),
    /** The workflow run (`workflow_run` only). */
    workflowRunId: z.number().int().nullable(),
    /** The workflow's name, or the check suite's app name. */
    name: z.string(),
    receivedAt: z.string(),
    /** Times this intake already waited for the issue's queued stage jobs (bounded). */
    waits: z.number().int().min(0).default(0),
  }),
  z.object({
    /**
     * `push` to the repository's default branch that changed `.github/mission-control.yml` (or may
     * have: a force push, or file lists GitHub cut short). The intake reads the file and brings
     * the stand-up schedule in line with it; no issue, task, model call or GitHub write.
     */
    event: z.literal("config_push"),
    repository: z.object({ owner: z.string(), repo: z.string() }),
    /** The default branch's new head, for the log. */
    after: z.string(),
    sender: Sender,
    receivedAt: z.string(),
  }),
]);
export type IntakePayload = z.infer<typeof IntakePayload>;

/** The events a notification is sent for (`config/notifications.ts` routes them to channels). */
export const NOTIFICATION_EVENTS = [
  "budget_threshold",
  "budget_exceeded",
  "task_ready_for_merge",
  "task_failed",
  "task_blocked",
  "job_stuck",
  "daily_digest",
  /** A repository's stand-up (orchestrator mode); without a route of its own it goes by `daily_digest`'s. */
  "standup",
] as const;
export type NotificationEventType = (typeof NOTIFICATION_EVENTS)[number];

/** Where a notification points: the repository and issue (and its pull request, if any). */
const NotificationSubject = z.object({
  /** `owner/repo`. */
  repository: z.string(),
  issueNumber: z.number().int(),
  issueUrl: z.string(),
  prNumber: z.number().int().nullable().optional(),
  prUrl: z.string().nullable().optional(),
});

/**
 * The facts a notification renders (`render/notification.ts`), captured when the event happened.
 * Amounts in nano-USD; times epoch ms. `reason` texts may carry untrusted words (a failure's
 * message): the renderer escapes them.
 */
export const NotificationEvent = z.discriminatedUnion("type", [
  z.object({
    type: z.enum(["task_ready_for_merge", "task_failed", "task_blocked"]),
    subject: NotificationSubject,
    /** The task's new state, and the transition's reason (app-written, may quote untrusted text). */
    state: z.string(),
    reason: z.string(),
  }),
  z.object({
    type: z.enum(["budget_threshold", "budget_exceeded"]),
    /** Present when the scope is a repository, agent or task of one repository. */
    subject: NotificationSubject.nullable(),
    scope: z.string(),
    scopeLabel: z.string(),
    period: z.string(),
    /** `null` when a `block` limit stopped a task: `reason` then says which limit and how much. */
    spentNanoUsd: z.number().int().nullable(),
    limitNanoUsd: z.number().int().nullable(),
    percent: z.number().nullable(),
    /** Epoch ms the window ends (`null` for a total). */
    resetsAt: z.number().nullable(),
    /** The task's stop reason (a `block` limit), app-written. */
    reason: z.string().optional(),
  }),
  z.object({
    type: z.literal("job_stuck"),
    subject: NotificationSubject.nullable(),
    jobId: z.string(),
    jobKind: z.string(),
    /** Times its lease or heartbeat lapsed and another worker took it over. */
    takeovers: z.number().int(),
    attempts: z.number().int(),
  }),
  z.object({
    /** A repository's daily stand-up was written (orchestrator mode); sent on the `daily_digest` routes. `subject` is the stand-up issue. */
    type: z.literal("standup"),
    subject: NotificationSubject,
    /** The stand-up's date, `YYYY-MM-DD` in the repository's time zone. */
    date: z.string(),
    started: z.number().int(),
    prsOpened: z.number().int(),
    merged: z.number().int(),
    failed: z.number().int(),
    /** Tasks waiting for a person (a plan to approve, a pull request to merge, a blocked task). */
    waiting: z.number().int(),
    /** Follow-ups proposed and not yet decided. */
    proposals: z.number().int(),
    spendNanoUsd: z.number().int(),
  }),
  z.object({
    type: z.literal("daily_digest"),
    installationId: z.number().int(),
    /** The UTC day summarised, `YYYY-MM-DD`. */
    day: z.string(),
    tasksStarted: z.number().int(),
    readyForMerge: z.number().int(),
    failed: z.number().int(),
    spendNanoUsd: z.number().int(),
    /** The repositories that spent most, largest first (at most a few). */
    topRepositories: z.array(z.object({ repository: z.string(), spendNanoUsd: z.number().int() })),
  }),
]);
export type NotificationEvent = z.infer<typeof NotificationEvent>;

/** Payload of `notify`: one event for one channel (the operator's channel name). */
export const NotifyPayload = z.object({
  channel: z.string(),
  /** The event's key (`transition:<id>`, `budget-alert:<id>`, …): with the channel, the dedupe key. */
  eventKey: z.string(),
  /** Epoch ms the event happened. */
  createdAt: z.number(),
  event: NotificationEvent,
});
export type NotifyPayload = z.infer<typeof NotifyPayload>;

/**
 * Payload of a `standup` job (orchestrator mode): write the repository's daily stand-up issue for
 * the fire at `scheduledFor` (epoch ms). Enqueued by the `orchestrator-tick` periodic task.
 */
export const StandupPayload = z.object({
  owner: z.string(),
  repo: z.string(),
  installationId: z.number().int(),
  /** Epoch ms of the scheduled fire this job is for (also in its dedupe key). */
  scheduledFor: z.number().int(),
});
export type StandupPayload = z.infer<typeof StandupPayload>;

/** Every job: its kind and the payload that kind carries. */
export const JobData = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("plan"), payload: StageJobPayload }),
  z.object({ kind: z.literal("code"), payload: StageJobPayload }),
  z.object({ kind: z.literal("revise"), payload: StageJobPayload }),
  z.object({ kind: z.literal("test"), payload: StageJobPayload }),
  z.object({ kind: z.literal("review"), payload: StageJobPayload }),
  z.object({ kind: z.literal("merge"), payload: StageJobPayload }),
  z.object({ kind: z.literal("pr_closed"), payload: PrClosedPayload }),
  z.object({ kind: z.literal("cancel"), payload: CancelPayload }),
  z.object({ kind: z.literal("tracking"), payload: TrackingPayload }),
  z.object({ kind: z.literal("answer"), payload: AnswerPayload }),
  z.object({ kind: z.literal("command"), payload: CommandJobPayload }),
  z.object({ kind: z.literal("intake"), payload: IntakePayload }),
  z.object({ kind: z.literal("notify"), payload: NotifyPayload }),
  z.object({ kind: z.literal("standup"), payload: StandupPayload }),
]);
export type JobData = z.infer<typeof JobData>;
export type JobKind = JobData["kind"];

/** Job kinds of the pipeline's stages. `tracking` only re-renders the tracking comment; `answer` answers a mention without moving the task. */
export const STAGE_KINDS = [
  "plan",
  "code",
  "revise",
  "test",
  "review",
  "merge",
  "pr_closed",
  "cancel",
  "tracking",
  "answer",
] as const satisfies readonly JobKind[];
export type StageKind = (typeof STAGE_KINDS)[number];

/**
 * Parses a job's kind and JSON payload.
 *
 * @throws {JobPayloadError} (not retryable) naming the kind and what is wrong: an unknown kind,
 *   JSON that does not parse, or a payload its kind's schema refuses
 */
export function parseJobData(kind: string, payloadJson: string): JobData {
  let payload: unknown;
  try {
    payload = JSON.parse(payloadJson);
  } catch {
    throw new JobPayloadError(kind, "the payload is not valid JSON");
  }
  const result = JobData.safeParse({ kind, payload });
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(job)"}: ${i.message}`).join("; ");
    throw new JobPayloadError(kind, problems);
  }
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// Keys

/** The repository and issue a job's keys name. */
export interface KeySubject {
  owner: string;
  repo: string;
  issueNumber: number;
}

/** The lock key shared by every stage job of one issue: `owner/repo#<n>`. */
export function issueLockKey(s: KeySubject): string {
  return `${s.owner}/${s.repo}#${s.issueNumber}`;
}

/**
 * The lock key of an issue's command lane, `cmd:owner/repo#<n>`: commands, intake and tracking
 * jobs run there, so `/status` or `/stop` is answered while a stage runs.
 */
export function commandLockKey(s: KeySubject): string {
  return `cmd:${issueLockKey(s)}`;
}

/** The task fields a stage job's dedupe key names. */
export interface KeyTask {
  id: number;
  run: number;
}

/**
 * Dedupe key of a stage job of one run: `task:<task>:run:<run>:<kind>:<nonce>`. Nonces:
 * {@link deliveryNonce} (a webhook started it), {@link afterJobNonce} (the next stage of a job),
 * {@link commandNonce} (a slash-command started it).
 */
export function stageDedupeKey(task: KeyTask, kind: StageKind, nonce: string): string {
  return `task:${task.id}:run:${task.run}:${kind}:${nonce}`;
}

/** Nonce of a stage job a webhook delivery starts. */
export function deliveryNonce(deliveryId: string): string {
  return `delivery-${deliveryId}`;
}

/**
 * Nonce of the stage job a job enqueues next: `<nonce>:after-<job id>` (nonce `1`, or the head
 * sha for `test`, `review` and `revise`), so a retry of that job cannot enqueue it twice and a
 * later job never collides with it.
 */
export function afterJobNonce(nonce: string, jobId: string): string {
  return `${nonce}:after-${jobId}`;
}

/** Nonce of a stage job a slash-command starts. */
export function commandNonce(commentId: number): string {
  return `cmd-${commentId}`;
}

/** Dedupe key of a job a delivery enqueues in the command lane: `delivery:<id>:<kind>` (`intake`, `command`, `tracking`). */
export function deliveryDedupeKey(deliveryId: string, kind: "intake" | "command" | "tracking"): string {
  return `delivery:${deliveryId}:${kind}`;
}

/** Lock key of a notification channel's lane, `notify:<channel>`: one send at a time per channel, so a slow channel never holds up another. */
export function notifyLockKey(channel: string): string {
  return `notify:${channel}`;
}

/** Dedupe key of one notification, `notify:<event key>:<channel>`: each event reaches each channel once. */
export function notifyDedupeKey(eventKey: string, channel: string): string {
  return `notify:${eventKey}:${channel}`;
}

/** Attempts of a `notify` job: with the worker's backoff, a channel may be down for a while before the notification is dropped. */
export const NOTIFY_MAX_ATTEMPTS = 8;

/** Lock key of a repository's stand-up: `standup:owner/repo` (one at a time per repository). */
export function standupLockKey(owner: string, repo: string): string {
  return `standup:${owner}/${repo}`.toLowerCase();
}

/**
 * Dedupe key of the stand-up of one scheduled fire: `standup:owner/repo:<epoch ms>`, so replicas
 * ticking together enqueue it once.
 */
export function standupDedupeKey(owner: string, repo: string, scheduledFor: number): string {
  return `${standupLockKey(owner, repo)}:${scheduledFor}`;
}
