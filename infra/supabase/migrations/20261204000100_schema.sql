-- izgens schema: every table the functions use, with the constraints that keep money and
-- state honest even if application code is wrong; row-level security, grants and the
-- Realtime publication. Runs unchanged on Supabase (PG 15/17) and on plain Postgres after
-- infra/supabase/bootstrap/auth.sql.
--
-- Tables live in `public` so a signed-in user can read their own rows through Supabase's
-- APIs (RLS below); every write goes through the functions in schema `izgens` (the next
-- migrations, one per domain), which is not exposed to API roles at all.
--
-- Once deployed, a migration is never edited: a change is a new migration, and
-- infra/supabase/schema.txt shows what the whole chain builds (docs/migrations.md).

create schema if not exists izgens;
revoke all on schema izgens from public;

-- ---------------------------------------------------------------------------------------
-- Accounts and money

create table public.profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  balance bigint not null default 0 constraint profiles_balance_non_negative check (balance >= 0),
  age_confirmed_at timestamptz,
  blocked_at timestamptz,
  blocked_reason text,
  display_name text constraint profiles_display_name_length check (char_length(display_name) <= 80),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.credit_ledger (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  delta bigint not null constraint credit_ledger_delta_non_zero check (delta <> 0),
  balance_after bigint not null constraint credit_ledger_balance_after_non_negative
    check (balance_after >= 0),
  reason text not null constraint credit_ledger_reason_known check (
    reason in ('purchase', 'grant', 'generation', 'generation_refund', 'operator_debit')
  ),
  ref text not null constraint credit_ledger_ref_length check (char_length(ref) between 1 and 200),
  note text constraint credit_ledger_note_length check (char_length(note) <= 500),
  created_at timestamptz not null default now(),
  -- debits are negative, credits positive: a sign error can never reach the table
  constraint credit_ledger_sign_matches_reason check (
    (reason in ('generation', 'operator_debit')) = (delta < 0)
  ),
  constraint credit_ledger_once_per_reason_ref unique (reason, ref)
);
create index credit_ledger_user_recent on public.credit_ledger (user_id, id desc);

-- ---------------------------------------------------------------------------------------
-- Prices (seeded by the last migration; operators change them with an UPDATE or INSERT,
-- no deploy: docs/operations.md)

-- The credit price and margin, in one row.
create table public.pricing (
  id boolean primary key default true constraint pricing_single_row check (id),
  usd_per_credit numeric(10, 4) not null constraint pricing_credit_positive check (usd_per_credit > 0),
  margin numeric(6, 3) not null constraint pricing_margin_at_least_cost check (margin >= 1)
);

-- The provider's unit prices (USD per 1M output tokens), versioned: a user's price comes
-- from the newest version in force, a generation's provider cost from the version in force
-- when the provider reported its bill. Both of the provider's tiers: 2.x generations with a
-- reference video are billed at the "with video input" price (byteplus-seedance.md §6).
create table public.provider_prices (
  model text not null,
  resolution text not null,
  generate_audio boolean not null,
  video_input boolean not null,
  usd_per_mtok numeric(10, 4) not null constraint provider_prices_positive check (usd_per_mtok > 0),
  effective_from timestamptz not null default now(),
  source text,
  primary key (model, resolution, generate_audio, video_input, effective_from)
);

-- The provider's minimum for video input, UNCONFIRMED in the reference: at least this many
-- times the output's own tokens (docs/generation.md).
create table public.video_input_floors (
  model text primary key,
  output_multiple numeric(6, 3) not null constraint video_input_floors_at_least_output
    check (output_multiple >= 1),
  note text
);

create table public.credit_packs (
  id text primary key constraint credit_packs_id_slug check (id ~ '^[a-z0-9_-]{1,40}$'),
  credits bigint not null constraint credit_packs_credits_positive check (credits > 0),
  price numeric(12, 2) not null constraint credit_packs_price_positive check (price > 0),
  currency text not null constraint credit_packs_currency_iso check (currency ~ '^[A-Z]{3}$'),
  active boolean not null default true,
  sort_order int not null default 0,
  created_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------
-- Generations

create table public.generations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  status text not null default 'queued' constraint generations_status_known check (
    status in ('queued', 'submitted', 'running', 'storing', 'completed', 'failed', 'canceled')
  ),
  -- prompt, ratio, seed, camera_fixed, reference_keys, error_message and request_hash hold
  -- what the person wrote (or a hash of it): erased when the generation is deleted
  -- (trigger generations_forget_deleted, 20261204000600_generations.sql)
  prompt text constraint generations_prompt_length check (char_length(prompt) between 1 and 4000),
  model text not null,
  resolution text not null,
  ratio text,
  duration int not null constraint generations_duration_positive check (duration > 0),
  seed bigint,
  camera_fixed boolean,
  generate_audio boolean,
  reference_keys text[] not null default '{}',
  cost bigint not null constraint generations_cost_positive check (cost > 0),
  idempotency_key text not null constraint generations_idempotency_key_length
    check (char_length(idempotency_key) between 1 and 255),
  request_hash text not null,
  provider_task_id text constraint generations_provider_task_unique unique,
  video_key text,
  video_etag text,
  bytes bigint constraint generations_bytes_non_negative check (bytes >= 0),
  content_type text,
  error_code text,
  error_message text,
  client_ip inet,
  recreated_from uuid references public.generations (id) on delete set null,
  -- a queued row is handed to exactly one submitter at a time until this lease ends
  submit_lease_until timestamptz,
  submit_attempts int not null default 0,
  storing_lease_until timestamptz,
  checked_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  submitted_at timestamptz,
  completed_at timestamptz,
  finished_at timestamptz,
  deleted_at timestamptz,
  -- set when a caller takes the lease to send the create, cleared only when the provider
  -- refused it (429: definitely no task). A queued row without it was never sent (the
  -- dispatcher's to submit); with it, a create may have been sent (reconciliation's to end).
  submit_attempted_at timestamptz,
  -- what was priced (the reference videos' length, the billable tokens) and, once the
  -- provider succeeded, what it billed (usage.completion_tokens) and what that cost us
  input_video_ms int not null default 0
    constraint generations_input_video_ms_non_negative check (input_video_ms >= 0),
  estimated_tokens bigint,
  provider_tokens bigint
    constraint generations_provider_tokens_non_negative check (provider_tokens >= 0),
  provider_cost_micro_usd bigint,
  provider_price_from timestamptz,
  billed_at timestamptz,
  margin_checked_at timestamptz,
  -- how the references are used: as first and last frame, or (2.x) multimodal references
  reference_mode text constraint generations_reference_mode_known
    check (reference_mode in ('frames', 'reference')),
  -- the `inputs` job deleted the generation's own copies of its references (inputs/…)
  inputs_deleted_at timestamptz,
  constraint generations_idempotency_per_user unique (user_id, idempotency_key),
  constraint generations_submitted_has_task check (
    status in ('queued', 'failed', 'canceled') or provider_task_id is not null
  ),
  constraint generations_completed_has_video check (status <> 'completed' or video_key is not null),
  constraint generations_content_until_deleted check (
    deleted_at is not null or (prompt is not null and ratio is not null)
  ),
  constraint generations_deleted_forgotten check (
    deleted_at is null
    or (prompt is null and ratio is null and seed is null and camera_fixed is null
        and reference_keys = '{}' and error_message is null and request_hash = '')
  )
);
create index generations_history on public.generations (user_id, created_at desc, id desc)
  where deleted_at is null;
-- the export reads a user's whole history in order, deleted generations included
create index generations_by_user on public.generations (user_id, created_at, id);
create index generations_in_flight on public.generations (status, updated_at)
  where status in ('queued', 'submitted', 'running', 'storing');
-- generations never sent to the provider, oldest first (the dispatcher's queue)
create index generations_waiting on public.generations (created_at, id)
  where status = 'queued' and submit_attempted_at is null;
create index generations_video_key on public.generations (video_key) where video_key is not null;
-- the inputs job's queue: ended generations whose reference copies may still be stored
create index generations_inputs_to_delete on public.generations (finished_at)
  where inputs_deleted_at is null and reference_keys <> '{}'
    and status in ('completed', 'failed', 'canceled');
-- the margin check's queue: billed, not yet looked at
create index generations_margin_unchecked on public.generations (billed_at)
  where billed_at is not null and margin_checked_at is null;
create index generations_billed on public.generations (billed_at) where billed_at is not null;

create table public.reference_uploads (
  key text primary key constraint reference_uploads_key_shape
    check (key ~ '^references/[0-9a-f-]{36}/[0-9a-f]{32}\.(jpg|png|webp|mp4|mov)$'),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  kind text not null constraint reference_uploads_kind_known check (kind in ('image', 'video')),
  content_type text not null,
  bytes bigint not null constraint reference_uploads_bytes_positive check (bytes > 0),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  deleted_at timestamptz
);
create index reference_uploads_user on public.reference_uploads (user_id, created_at desc);
create index reference_uploads_expiry on public.reference_uploads (expires_at) where deleted_at is null;

-- ---------------------------------------------------------------------------------------
-- Payments: kept for the legal retention period, anonymised (user_id, client_ip null)
-- when the account is purged. The flags are explained in 20261204000700_payments.sql.

create table public.purchases (
  id uuid primary key default gen_random_uuid(),
  user_id uuid references public.profiles (user_id) on delete set null,
  pack_id text not null references public.credit_packs (id),
  credits bigint not null constraint purchases_credits_positive check (credits > 0),
  amount numeric(12, 2) not null constraint purchases_amount_positive check (amount > 0),
  currency text not null,
  status text not null default 'pending' constraint purchases_status_known check (
    status in ('pending', 'completed', 'mismatch', 'expired', 'cancelled', 'error')
  ),
  provider_status text,
  idempotency_key text constraint purchases_idempotency_key_length
    check (idempotency_key is null or char_length(idempotency_key) between 1 and 255),
  plisio_txn_id text constraint purchases_plisio_txn_unique unique,
  invoice_url text,
  paid_amount numeric(24, 8),
  paid_currency text,
  credited_at timestamptz,
  flagged text constraint purchases_flagged_known check (flagged is null or flagged in (
    'currency_mismatch', 'amount_mismatch', 'txn_conflict', 'unknown_status',
    'partial_payment', 'underpaid_mismatch', 'owner_deleted'
  )),
  client_ip inet,
  anonymized_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- last looked up at Plisio by the reconciliation sweep
  reconciled_at timestamptz,
  constraint purchases_idempotency_per_user unique (user_id, idempotency_key)
);
create index purchases_user on public.purchases (user_id, created_at desc, id desc);
create index purchases_open on public.purchases (created_at) where status = 'pending';
-- the reconciliation sweep: least recently checked open purchases first
create index purchases_reconcile on public.purchases (reconciled_at nulls first, created_at)
  where status = 'pending';
-- support's queue
create index purchases_flagged on public.purchases (updated_at) where flagged is not null;

create table public.payment_events (
  id bigint generated always as identity primary key,
  purchase_id uuid references public.purchases (id) on delete set null,
  order_number text,
  txn_id text,
  status text,
  body_sha256 text not null constraint payment_events_once unique,
  payload jsonb not null,
  flagged text constraint payment_events_flagged_known check (flagged is null or flagged in (
    'unknown_order', 'currency_mismatch', 'amount_mismatch', 'txn_conflict', 'unknown_status',
    'partial_payment', 'underpaid_mismatch', 'owner_deleted'
  )),
  source text not null default 'callback' constraint payment_events_source_known
    check (source in ('callback', 'reconciliation')),
  received_at timestamptz not null default now()
);
-- one row per verified event, not per byte sequence (izgens.plisio_signature.canonical_sha256):
-- the same fields re-sent with other key order, spacing or escapes are one event
comment on column public.payment_events.body_sha256 is
  'sha256 of the canonical form verify_hash signs: the fields without verify_hash, keys '
  'sorted, compact separators, non-ASCII raw (reconciliation: of the operation payload)';
create index payment_events_purchase on public.payment_events (purchase_id, id);
create index payment_events_received on public.payment_events (received_at);
create index payment_events_order on public.payment_events (order_number);
-- support's queue
create index payment_events_flagged on public.payment_events (received_at)
  where flagged is not null;

-- ---------------------------------------------------------------------------------------
-- Privacy
--
-- An export:  pending ──claim──▶ building ──finish──▶ ready ──expire──▶ expired
--                                   │ (lease runs out: claimed again, at most 3 attempts)
--                                   └──fail──▶ failed

create table public.data_exports (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  status text not null default 'pending' constraint data_exports_status_known
    check (status in ('pending', 'building', 'ready', 'failed', 'expired')),
  object_key text,
  bytes bigint,
  error text,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  expires_at timestamptz,
  -- the builder holding it, and its progress (GET /privacy/exports/{id})
  lease_until timestamptz,
  started_at timestamptz,
  attempts int not null default 0,
  rows_total bigint,
  rows_done bigint
);
create index data_exports_user on public.data_exports (user_id, created_at desc);
create index data_exports_expiry on public.data_exports (expires_at) where status = 'ready';
create index data_exports_open on public.data_exports (created_at)
  where status in ('pending', 'building');

create table public.deletion_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  status text not null default 'scheduled' constraint deletion_requests_status_known
    check (status in ('scheduled', 'canceled', 'purging')),
  requested_at timestamptz not null default now(),
  scheduled_for timestamptz not null,
  canceled_at timestamptz,
  purge_started_at timestamptz,
  purge_lease_until timestamptz,
  constraint deletion_requests_within_30_days
    check (scheduled_for <= requested_at + interval '30 days')
);
create unique index deletion_requests_one_active on public.deletion_requests (user_id)
  where status in ('scheduled', 'purging');
create index deletion_requests_due on public.deletion_requests (scheduled_for)
  where status in ('scheduled', 'purging');

-- ---------------------------------------------------------------------------------------
-- Rate limits: fixed windows, one row per (bucket, window).

create table public.rate_limits (
  bucket text not null,
  window_start timestamptz not null,
  hits int not null default 0,
  primary key (bucket, window_start)
);
create index rate_limits_window on public.rate_limits (window_start);

-- ---------------------------------------------------------------------------------------
-- Row-level security: owners read their own rows; nobody writes through the API roles.

alter table public.profiles enable row level security;
alter table public.credit_ledger enable row level security;
alter table public.pricing enable row level security;
alter table public.provider_prices enable row level security;
alter table public.video_input_floors enable row level security;
alter table public.credit_packs enable row level security;
alter table public.generations enable row level security;
alter table public.reference_uploads enable row level security;
alter table public.purchases enable row level security;
alter table public.payment_events enable row level security;
alter table public.data_exports enable row level security;
alter table public.deletion_requests enable row level security;
alter table public.rate_limits enable row level security;

create policy profiles_owner_read on public.profiles
  for select to authenticated using (user_id = (select auth.uid()));
create policy credit_ledger_owner_read on public.credit_ledger
  for select to authenticated using (user_id = (select auth.uid()));
create policy generations_owner_read on public.generations
  for select to authenticated using (user_id = (select auth.uid()) and deleted_at is null);
create policy reference_uploads_owner_read on public.reference_uploads
  for select to authenticated using (user_id = (select auth.uid()) and deleted_at is null);
create policy purchases_owner_read on public.purchases
  for select to authenticated using (user_id = (select auth.uid()));
create policy data_exports_owner_read on public.data_exports
  for select to authenticated using (user_id = (select auth.uid()));
create policy deletion_requests_owner_read on public.deletion_requests
  for select to authenticated using (user_id = (select auth.uid()));
-- the catalogue is public to signed-in users; prices and raw events are not
create policy credit_packs_read on public.credit_packs
  for select to authenticated using (active);

revoke insert, update, delete, truncate on all tables in schema public from anon, authenticated;
revoke all on public.payment_events, public.rate_limits, public.pricing,
  public.provider_prices, public.video_input_floors
  from anon, authenticated;

-- Least privilege to the last object: on Supabase the default privileges hand the API
-- roles USAGE/SELECT/UPDATE on every new sequence (the identity sequences of credit_ledger
-- and payment_events among them); they need none, now or for tables added later.
revoke all on all sequences in schema public from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;

-- ---------------------------------------------------------------------------------------
-- Live status through Supabase Realtime
--
-- A frontend subscribes with supabase-js to changes of `generations` and `profiles`
-- (docs/realtime.md); Realtime checks every change against the subscriber's RLS policies
-- (owner only, live generations only), so each user receives only their own rows.
-- Supabase creates the publication itself; plain Postgres (tests, dev) gets it here.

do $$
declare
  v_table text;
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  foreach v_table in array array['generations', 'profiles'] loop
    if not exists (
      select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = v_table
    ) then
      execute format('alter publication supabase_realtime add table public.%I', v_table);
    end if;
  end loop;
end $$;
