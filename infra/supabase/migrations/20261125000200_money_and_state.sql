-- Every change of money or generation state, each one SQL function: one transaction, one
-- round trip, idempotent by a unique key, checking the current state under a row lock.
--
-- Errors use dedicated SQLSTATEs that izgens.credits maps to Python exceptions:
--   IZ001 insufficient_credits   detail: {"balance": n, "required": n}
--   IZ002 idempotency_conflict
--   IZ003 age_not_confirmed
--   IZ004 account_blocked
--   IZ005 deletion_pending
--   IZ006 rate_limited           detail: {"retry_after": seconds, "bucket": "..."}
--   IZ007 invalid_transition     detail: {"from": status, "to": status}
--   IZ008 not_found              detail: what was not found
--   IZ009 invalid_argument

-- ---------------------------------------------------------------------------------------
-- Profiles

-- Creates the profile on first sight of a valid user, but only while the auth user exists:
-- a token that outlives its (purged) user can never bring the account back.
create or replace function izgens.ensure_profile(p_user uuid)
returns setof public.profiles
language plpgsql as $$
begin
  return query select * from public.profiles where user_id = p_user;
  if found then
    return;
  end if;
  return query
    insert into public.profiles (user_id)
    select id from auth.users where id = p_user
    on conflict (user_id) do update set user_id = excluded.user_id
    returning *;
end $$;

-- ---------------------------------------------------------------------------------------
-- Ledger

-- The only code that changes a balance. Locks the profile row, so all money movements of
-- one user are serialised; a replayed (reason, ref) returns the original entry unchanged.
create or replace function izgens.apply_ledger(
  p_user uuid, p_delta bigint, p_reason text, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
declare
  v_balance bigint;
  v_entry public.credit_ledger;
begin
  select balance into v_balance from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  select * into v_entry from public.credit_ledger where reason = p_reason and ref = p_ref;
  if found then
    if v_entry.user_id <> p_user or v_entry.delta <> p_delta then
      raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
        detail = format('ledger entry %s/%s exists with other values', p_reason, p_ref);
    end if;
    return v_entry;
  end if;
  if v_balance + p_delta < 0 then
    raise exception using errcode = 'IZ001', message = 'insufficient_credits',
      detail = json_build_object('balance', v_balance, 'required', -p_delta)::text;
  end if;
  update public.profiles set balance = balance + p_delta, updated_at = now()
   where user_id = p_user
  returning balance into v_balance;
  insert into public.credit_ledger (user_id, delta, balance_after, reason, ref, note)
  values (p_user, p_delta, v_balance, p_reason, p_ref, p_note)
  returning * into v_entry;
  return v_entry;
end $$;

create or replace function izgens.grant_credits(
  p_user uuid, p_credits bigint, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
begin
  if p_credits is null or p_credits <= 0 then
    raise exception using errcode = 'IZ009', message = 'invalid_argument', detail = 'credits must be positive';
  end if;
  return izgens.apply_ledger(p_user, p_credits, 'grant', p_ref, p_note);
end $$;

create or replace function izgens.debit_credits(
  p_user uuid, p_credits bigint, p_ref text, p_note text default null
) returns public.credit_ledger
language plpgsql as $$
begin
  if p_credits is null or p_credits <= 0 then
    raise exception using errcode = 'IZ009', message = 'invalid_argument', detail = 'credits must be positive';
  end if;
  return izgens.apply_ledger(p_user, -p_credits, 'operator_debit', p_ref, p_note);
end $$;

-- Every profile whose balance is not the sum of its ledger, or whose newest entry's
-- balance_after disagrees with the balance. Empty means the books are right.
create or replace function izgens.ledger_mismatches()
returns table (user_id uuid, balance bigint, ledger_sum bigint, last_balance_after bigint)
language sql stable as $$
  select p.user_id, p.balance, coalesce(s.total, 0)::bigint, s.last_after
    from public.profiles p
    left join lateral (
      select sum(l.delta) as total,
             (select l2.balance_after from public.credit_ledger l2
               where l2.user_id = p.user_id order by l2.id desc limit 1) as last_after
        from public.credit_ledger l where l.user_id = p.user_id
    ) s on true
   where p.balance <> coalesce(s.total, 0)
      or (s.last_after is not null and s.last_after <> p.balance)
$$;

-- ---------------------------------------------------------------------------------------
-- Rate limits

-- Fixed-window counter. Returns 0 when the hit is admitted (and counted), else the seconds
-- until the window ends. Refused hits are not counted; the row lock of the upsert makes
-- concurrent callers queue, so a window never admits more than p_limit.
create or replace function izgens.rate_limit(p_bucket text, p_limit int, p_window_seconds int)
returns int
language plpgsql as $$
declare
  v_window timestamptz;
  v_hits int;
begin
  if p_limit is null or p_window_seconds is null or p_window_seconds <= 0 then
    return 0;
  end if;
  v_window := to_timestamp(floor(extract(epoch from now()) / p_window_seconds) * p_window_seconds);
  insert into public.rate_limits as r (bucket, window_start, hits)
  values (p_bucket, v_window, 1)
  on conflict (bucket, window_start) do update set hits = r.hits + 1 where r.hits < p_limit
  returning hits into v_hits;
  if v_hits is null or v_hits > p_limit then
    return greatest(1, ceil(extract(epoch from (v_window + make_interval(secs => p_window_seconds) - now())))::int);
  end if;
  return 0;
end $$;

create or replace function izgens.require_rate_limit(p_bucket text, p_limit int, p_window_seconds int)
returns void
language plpgsql as $$
declare
  v_retry int := izgens.rate_limit(p_bucket, p_limit, p_window_seconds);
begin
  if v_retry > 0 then
    raise exception using errcode = 'IZ006', message = 'rate_limited',
      detail = json_build_object('retry_after', v_retry, 'bucket', split_part(p_bucket, ':', 1))::text;
  end if;
end $$;

-- ---------------------------------------------------------------------------------------
-- Pricing

create or replace function izgens.price_credits(
  p_model text, p_resolution text, p_generate_audio boolean, p_tokens bigint
) returns bigint
language plpgsql stable as $$
declare
  v_usd numeric;
  v_cost bigint;
begin
  select ceil(p_tokens * mp.usd_per_mtok / 1000000 * pr.margin / pr.usd_per_credit)
    into v_cost
    from public.model_prices mp cross join public.pricing pr
   where mp.model = p_model and mp.resolution = p_resolution
     and mp.generate_audio = coalesce(p_generate_audio, false);
  if v_cost is null then
    raise exception using errcode = 'IZ008', message = 'not_found',
      detail = format('no price for %s %s audio=%s', p_model, p_resolution, p_generate_audio);
  end if;
  return greatest(v_cost, 1);
end $$;

-- ---------------------------------------------------------------------------------------
-- Generations

-- The whole admission of a generation in one call: idempotency, gates, rate limits,
-- price, debit and the queued row. Answers {"created", "submit", "generation"}:
-- `submit` is true when this caller holds the submission lease (nothing older waits for
-- provider capacity), so arrival order is kept when the provider is saturated.
create or replace function izgens.start_generation(
  p_user uuid,
  p_idempotency_key text,
  p_request_hash text,
  p_spec jsonb,
  p_tokens bigint,
  p_client_ip inet,
  p_user_limit int,
  p_ip_limit int,
  p_window_seconds int,
  p_submit_lease_seconds int default 60
) returns jsonb
language plpgsql as $$
declare
  v_profile public.profiles;
  v_gen public.generations;
  v_cost bigint;
  v_backlog boolean;
begin
  select * into v_profile from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;

  -- after the lock, so concurrent requests with one key see each other's row
  select * into v_gen from public.generations
   where user_id = p_user and idempotency_key = p_idempotency_key;
  if found then
    if v_gen.request_hash <> p_request_hash then
      raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
        detail = 'this Idempotency-Key was used with another request body';
    end if;
    return jsonb_build_object('created', false, 'submit', false, 'generation', to_jsonb(v_gen));
  end if;

  if v_profile.blocked_at is not null then
    raise exception using errcode = 'IZ004', message = 'account_blocked';
  end if;
  if v_profile.age_confirmed_at is null then
    raise exception using errcode = 'IZ003', message = 'age_not_confirmed';
  end if;
  if exists (select 1 from public.deletion_requests
              where user_id = p_user and status in ('scheduled', 'purging')) then
    raise exception using errcode = 'IZ005', message = 'deletion_pending';
  end if;

  perform izgens.require_rate_limit('generate:user:' || p_user, p_user_limit, p_window_seconds);
  if p_client_ip is not null then
    perform izgens.require_rate_limit('generate:ip:' || host(p_client_ip), p_ip_limit, p_window_seconds);
  end if;

  v_cost := izgens.price_credits(p_spec ->> 'model', p_spec ->> 'resolution',
                                 (p_spec ->> 'generate_audio')::boolean, p_tokens);
  if v_profile.balance < v_cost then
    raise exception using errcode = 'IZ001', message = 'insufficient_credits',
      detail = json_build_object('balance', v_profile.balance, 'required', v_cost)::text;
  end if;

  -- rows deferred for lack of provider capacity wait with no lease; while any wait, a new
  -- generation queues behind them instead of overtaking (index generations_waiting)
  v_backlog := exists (
    select 1 from public.generations where status = 'queued' and submit_lease_until is null
  );

  insert into public.generations (
    user_id, prompt, model, resolution, ratio, duration, seed, camera_fixed, generate_audio,
    reference_keys, cost, idempotency_key, request_hash, client_ip, recreated_from,
    submit_lease_until
  ) values (
    p_user,
    p_spec ->> 'prompt',
    p_spec ->> 'model',
    p_spec ->> 'resolution',
    p_spec ->> 'ratio',
    (p_spec ->> 'duration')::int,
    (p_spec ->> 'seed')::bigint,
    (p_spec ->> 'camera_fixed')::boolean,
    (p_spec ->> 'generate_audio')::boolean,
    coalesce((select array_agg(k) from jsonb_array_elements_text(p_spec -> 'reference_keys') k), '{}'),
    v_cost,
    p_idempotency_key,
    p_request_hash,
    p_client_ip,
    (p_spec ->> 'recreated_from')::uuid,
    case when v_backlog then null else now() + make_interval(secs => p_submit_lease_seconds) end
  ) returning * into v_gen;

  perform izgens.apply_ledger(p_user, -v_cost, 'generation', v_gen.id::text);

  return jsonb_build_object('created', true, 'submit', not v_backlog, 'generation', to_jsonb(v_gen));
end $$;

-- Hands out up to p_limit queued generations, oldest first, each to exactly one caller
-- until its lease ends. Used by the dispatcher when the provider had no capacity.
create or replace function izgens.claim_submissions(p_limit int, p_lease_seconds int default 60)
returns setof public.generations
language sql as $$
  with claimed as (
    update public.generations g
       set submit_lease_until = now() + make_interval(secs => p_lease_seconds),
           submit_attempts = g.submit_attempts + 1,
           updated_at = now()
     where g.id in (
       select id from public.generations
        where status = 'queued' and (submit_lease_until is null or submit_lease_until < now())
        order by created_at, id
        limit p_limit
        for update skip locked
     )
    returning g.*
  )
  select * from claimed order by created_at, id;
$$;

-- The provider had no capacity: keep the generation queued, give its lease back.
create or replace function izgens.defer_submission(p_id uuid)
returns setof public.generations
language sql as $$
  update public.generations
     set submit_lease_until = null, updated_at = now()
   where id = p_id and status = 'queued'
  returning *;
$$;

create or replace function izgens._lock_generation(p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations;
begin
  select * into v_gen from public.generations where id = p_id for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'generation';
  end if;
  return v_gen;
end $$;

create or replace function izgens._invalid_transition(p_from text, p_to text)
returns void
language plpgsql as $$
begin
  raise exception using errcode = 'IZ007', message = 'invalid_transition',
    detail = json_build_object('from', p_from, 'to', p_to)::text;
end $$;

create or replace function izgens.mark_submitted(p_id uuid, p_task_id text)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status = 'queued' then
    update public.generations
       set status = 'submitted', provider_task_id = p_task_id, submitted_at = now(),
           submit_lease_until = null, checked_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.provider_task_id = p_task_id then
    return v_gen;  -- a replay: already submitted (or further) with this very task
  end if;
  perform izgens._invalid_transition(v_gen.status, 'submitted');
  return null;
end $$;

create or replace function izgens.mark_running(p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status = 'submitted' then
    update public.generations set status = 'running', checked_at = now(), updated_at = now()
     where id = p_id returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.status in ('running', 'storing', 'completed') then
    return v_gen;  -- late or duplicate news: never move backwards
  end if;
  perform izgens._invalid_transition(v_gen.status, 'running');
  return null;
end $$;

-- Exactly one caller wins the right to copy the video; a winner that died is replaced once
-- its lease has run out. Losers get no row.
create or replace function izgens.claim_storing(p_id uuid, p_lease_seconds int default 300)
returns setof public.generations
language sql as $$
  update public.generations
     set status = 'storing', storing_lease_until = now() + make_interval(secs => p_lease_seconds),
         checked_at = now(), updated_at = now()
   where id = p_id
     and (status in ('submitted', 'running')
          or (status = 'storing' and storing_lease_until < now()))
  returning *;
$$;

create or replace function izgens.complete_generation(
  p_id uuid, p_video_key text, p_etag text, p_bytes bigint, p_content_type text
) returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status = 'storing' then
    update public.generations
       set status = 'completed', video_key = p_video_key, video_etag = p_etag, bytes = p_bytes,
           content_type = p_content_type, storing_lease_until = null,
           completed_at = now(), finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.status = 'completed' and v_gen.video_key = p_video_key then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'completed');
  return null;
end $$;

-- Fails an unfinished generation and refunds its cost, exactly once.
create or replace function izgens.fail_generation(p_id uuid, p_code text, p_message text)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('queued', 'submitted', 'running', 'storing') then
    update public.generations
       set status = 'failed', error_code = left(p_code, 200), error_message = left(p_message, 1000),
           submit_lease_until = null, storing_lease_until = null,
           finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    perform izgens.apply_ledger(v_gen.user_id, v_gen.cost, 'generation_refund', v_gen.id::text);
    return v_gen;
  end if;
  if v_gen.status = 'failed' then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'failed');
  return null;
end $$;

-- Cancels a generation the provider has not started and refunds it, exactly once.
create or replace function izgens.cancel_generation(p_id uuid, p_reason text default null)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('queued', 'submitted') then
    update public.generations
       set status = 'canceled', error_code = 'canceled', error_message = left(p_reason, 1000),
           submit_lease_until = null, finished_at = now(), updated_at = now()
     where id = p_id
    returning * into v_gen;
    perform izgens.apply_ledger(v_gen.user_id, v_gen.cost, 'generation_refund', v_gen.id::text);
    return v_gen;
  end if;
  if v_gen.status = 'canceled' then
    return v_gen;
  end if;
  perform izgens._invalid_transition(v_gen.status, 'canceled');
  return null;
end $$;

-- ---------------------------------------------------------------------------------------
-- Purchases

-- Credits a purchase's pack exactly once; the purchase row lock and unique (reason, ref)
-- both stand in the way of a second credit.
create or replace function izgens.credit_purchase(p_purchase uuid)
returns public.purchases
language plpgsql as $$
declare
  v_p public.purchases;
begin
  select * into v_p from public.purchases where id = p_purchase for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'purchase';
  end if;
  if v_p.credited_at is not null then
    return v_p;
  end if;
  if v_p.user_id is null then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'purchase owner';
  end if;
  perform izgens.apply_ledger(v_p.user_id, v_p.credits, 'purchase', v_p.id::text);
  update public.purchases set credited_at = now(), updated_at = now()
   where id = p_purchase returning * into v_p;
  return v_p;
end $$;


-- ---------------------------------------------------------------------------------------
-- Account reads (one round trip each)

-- The account as GET /me shows it; creates the profile on first sight. Null when the auth
-- user is gone (purged), which the caller answers with 401.
create or replace function izgens.account(p_user uuid)
returns jsonb
language plpgsql as $$
declare
  v_p public.profiles;
begin
  select * into v_p from izgens.ensure_profile(p_user);
  if v_p.user_id is null then
    return null;
  end if;
  return jsonb_build_object(
    'user_id', v_p.user_id,
    'email', (select email from auth.users where id = p_user),
    'balance', v_p.balance,
    'age_confirmed', v_p.age_confirmed_at is not null,
    'age_confirmed_at', v_p.age_confirmed_at,
    'display_name', v_p.display_name,
    'blocked', v_p.blocked_at is not null,
    'deletion_scheduled_for', (
      select scheduled_for from public.deletion_requests
       where user_id = p_user and status in ('scheduled', 'purging')
    )
  );
end $$;

create or replace function izgens.confirm_age(p_user uuid)
returns jsonb
language plpgsql as $$
begin
  perform izgens.ensure_profile(p_user);
  update public.profiles
     set age_confirmed_at = coalesce(age_confirmed_at, now()), updated_at = now()
   where user_id = p_user;
  return izgens.account(p_user);
end $$;

-- ---------------------------------------------------------------------------------------
-- Nothing in schema izgens is callable through the API roles: they have no USAGE on the
-- schema (revoked at its creation), and EXECUTE is revoked too as a second lock. Later
-- migrations that add functions end with the same two revokes.

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
