-- izgens core schema: every table the functions use, with the constraints that keep money
-- and state honest even if application code is wrong. Runs unchanged on Supabase (PG 15/17)
-- and on plain Postgres after infra/supabase/bootstrap/auth.sql.
--
-- Tables live in `public` so a signed-in user can read their own rows through Supabase's
-- APIs (RLS below); every write goes through the functions in schema `izgens`, which is not
-- exposed to API roles at all.


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

-- Credits per generation: usd_per_mtok per (model, resolution, audio); the credit price and
-- margin in one row. Operators change prices with an UPDATE, no deploy.
create table public.model_prices (
  model text not null,
  resolution text not null,
  generate_audio boolean not null,
  usd_per_mtok numeric(10, 4) not null constraint model_prices_positive check (usd_per_mtok > 0),
  primary key (model, resolution, generate_audio)
);

create table public.pricing (
  id boolean primary key default true constraint pricing_single_row check (id),
  usd_per_credit numeric(10, 4) not null constraint pricing_credit_positive check (usd_per_credit > 0),
  margin numeric(6, 3) not null constraint pricing_margin_at_least_cost check (margin >= 1)
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
  prompt text not null constraint generations_prompt_length check (char_length(prompt) between 1 and 4000),
  model text not null,
  resolution text not null,
  ratio text not null,
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
  constraint generations_idempotency_per_user unique (user_id, idempotency_key),
  constraint generations_submitted_has_task check (
    status in ('queued', 'failed', 'canceled') or provider_task_id is not null
  ),
  constraint generations_completed_has_video check (status <> 'completed' or video_key is not null)
);
create index generations_history on public.generations (user_id, created_at desc, id desc)
  where deleted_at is null;
create index generations_in_flight on public.generations (status, updated_at)
  where status in ('queued', 'submitted', 'running', 'storing');
-- queued rows handed back for lack of provider capacity, oldest first (the dispatcher's queue)
create index generations_waiting on public.generations (created_at, id)
  where status = 'queued' and submit_lease_until is null;
create index generations_video_key on public.generations (video_key) where video_key is not null;

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
-- when the account is purged.

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
  idempotency_key text,
  plisio_txn_id text constraint purchases_plisio_txn_unique unique,
  invoice_url text,
  paid_amount numeric(24, 8),
  paid_currency text,
  credited_at timestamptz,
  flagged text,
  client_ip inet,
  anonymized_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint purchases_idempotency_per_user unique (user_id, idempotency_key)
);
create index purchases_user on public.purchases (user_id, created_at desc, id desc);
create index purchases_open on public.purchases (created_at) where status = 'pending';

create table public.payment_events (
  id bigint generated always as identity primary key,
  purchase_id uuid references public.purchases (id) on delete set null,
  order_number text,
  txn_id text,
  status text,
  body_sha256 text not null constraint payment_events_once unique,
  payload jsonb not null,
  flagged text,
  source text not null default 'callback' constraint payment_events_source_known
    check (source in ('callback', 'reconciliation')),
  received_at timestamptz not null default now()
);
create index payment_events_purchase on public.payment_events (purchase_id, id);
create index payment_events_received on public.payment_events (received_at);

-- ---------------------------------------------------------------------------------------
-- Privacy

create table public.data_exports (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  status text not null default 'pending' constraint data_exports_status_known
    check (status in ('pending', 'ready', 'failed', 'expired')),
  object_key text,
  bytes bigint,
  error text,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  expires_at timestamptz
);
create index data_exports_user on public.data_exports (user_id, created_at desc);
create index data_exports_expiry on public.data_exports (expires_at) where status = 'ready';

create table public.deletion_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  status text not null default 'scheduled' constraint deletion_requests_status_known
    check (status in ('scheduled', 'canceled', 'purging')),
  requested_at timestamptz not null default now(),
  scheduled_for timestamptz not null,
  canceled_at timestamptz,
  purge_started_at timestamptz,
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
alter table public.model_prices enable row level security;
alter table public.pricing enable row level security;
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
revoke all on public.payment_events, public.rate_limits, public.pricing, public.model_prices
  from anon, authenticated;
