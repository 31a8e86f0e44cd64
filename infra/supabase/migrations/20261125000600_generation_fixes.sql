-- Generation lifecycle fixes found by tests/generation (the earlier migrations stay as
-- they were applied).
--
-- 1. Never submitted twice. A queued generation is one of two kinds:
--      never sent to the provider (waiting for capacity): the dispatcher may submit it;
--      possibly sent (a create timed out or failed ambiguously, or the process died between
--      the debit and the create): only reconciliation may end it, by finding its task in
--      the provider's list or, after a window, failing and refunding it.
--    `submit_attempted_at` tells them apart: set when a caller takes the lease to send the
--    create, cleared only by `defer_submission` (the provider refused with 429: definitely
--    no task). `claim_submissions` used to hand out expired leases too, which re-created
--    tasks whose first create had been ambiguous.
-- 2. The reconciliation window is measured from the last attempt, not from `created_at`
--    (a generation that waited an hour for capacity gets the same window as any other).
-- 3. A claim marks its rows attempted, so the dispatcher claims one at a time
--    (`claim_submissions(1)`): only the generation actually being sent is marked.
-- 4. `mark_running` on an already running generation records the check (`checked_at`):
--    a status read of a running generation no longer asks the provider on every request.

alter table public.generations add column submit_attempted_at timestamptz;

-- rows queued under the old rules with a lease may have been sent: the safe side
update public.generations
   set submit_attempted_at = coalesce(submit_lease_until - interval '60 seconds', updated_at)
 where status = 'queued' and submit_lease_until is not null;

drop index if exists public.generations_waiting;
create index generations_waiting on public.generations (created_at, id)
  where status = 'queued' and submit_attempted_at is null;

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

  -- generations never sent to the provider (deferred for lack of capacity) wait with no
  -- attempt; while any wait, a new one queues behind them (index generations_waiting)
  v_backlog := exists (
    select 1 from public.generations where status = 'queued' and submit_attempted_at is null
  );

  insert into public.generations (
    user_id, prompt, model, resolution, ratio, duration, seed, camera_fixed, generate_audio,
    reference_keys, cost, idempotency_key, request_hash, client_ip, recreated_from,
    submit_lease_until, submit_attempted_at, submit_attempts
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
    case when v_backlog then null else now() + make_interval(secs => p_submit_lease_seconds) end,
    case when v_backlog then null else now() end,
    case when v_backlog then 0 else 1 end
  ) returning * into v_gen;

  perform izgens.apply_ledger(p_user, -v_cost, 'generation', v_gen.id::text);

  return jsonb_build_object('created', true, 'submit', not v_backlog, 'generation', to_jsonb(v_gen));
end $$;


-- Hands up to p_limit waiting generations (never sent to the provider), oldest first, each
-- to exactly one caller, marked attempted: from then on only `mark_submitted`,
-- `defer_submission` or reconciliation move them.
create or replace function izgens.claim_submissions(p_limit int, p_lease_seconds int default 60)
returns setof public.generations
language sql as $$
  with claimed as (
    update public.generations g
       set submit_lease_until = now() + make_interval(secs => p_lease_seconds),
           submit_attempted_at = now(),
           submit_attempts = g.submit_attempts + 1,
           updated_at = now()
     where g.id in (
       select id from public.generations
        where status = 'queued' and submit_attempted_at is null
        order by created_at, id
        limit p_limit
        for update skip locked
     )
    returning g.*
  )
  select * from claimed order by created_at, id;
$$;

-- The provider refused with 429 (no task was created): the generation waits again, in its
-- place by arrival, for the dispatcher.
create or replace function izgens.defer_submission(p_id uuid)
returns setof public.generations
language sql as $$
  update public.generations
     set submit_lease_until = null, submit_attempted_at = null, updated_at = now()
   where id = p_id and status = 'queued'
  returning *;
$$;

create or replace function izgens.mark_running(p_id uuid)
returns public.generations
language plpgsql as $$
declare
  v_gen public.generations := izgens._lock_generation(p_id);
begin
  if v_gen.status in ('submitted', 'running') then
    update public.generations
       set status = 'running', checked_at = now(),
           updated_at = case when v_gen.status = 'submitted' then now() else updated_at end
     where id = p_id returning * into v_gen;
    return v_gen;
  end if;
  if v_gen.status in ('storing', 'completed') then
    return v_gen;  -- late or duplicate news: never move backwards
  end if;
  perform izgens._invalid_transition(v_gen.status, 'running');
  return null;
end $$;

-- Generations the reconciliation job must look at, oldest first: in flight and not checked
-- recently; storing past its lease; queued only when a create may have been sent and its
-- lease ran out (waiting ones belong to the dispatcher).
create or replace function izgens.stuck_generations(p_older_than_seconds int, p_limit int)
returns setof public.generations
language sql stable as $$
  select * from public.generations
   where status in ('submitted', 'running', 'storing', 'queued')
     and coalesce(checked_at, updated_at) < now() - make_interval(secs => p_older_than_seconds)
     and (status <> 'storing' or storing_lease_until < now())
     and (status <> 'queued'
          or (submit_attempted_at is not null and coalesce(submit_lease_until, '-infinity') < now()))
   order by updated_at
   limit p_limit;
$$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
