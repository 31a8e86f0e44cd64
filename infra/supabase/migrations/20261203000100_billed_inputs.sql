-- Charge what the provider bills (reference/byteplus-seedance.md §6).
--
-- 1. Provider unit prices become versioned rows with both of the provider's tiers: 2.x
--    generations with a reference video are billed at the "with video input" price, for
--    the reference videos' seconds plus the output's, and never below a minimum. The
--    user's price is computed from the newest version; a generation's provider cost from
--    the version in force when the provider reported its bill.
-- 2. The minimum for video input is UNCONFIRMED in the reference: it is a row per model
--    (`video_input_floors.output_multiple`: at least this many times the output's own
--    tokens) that operators can change. Seeded conservatively, see docs/generation.md.
-- 3. Each generation records what was priced (`estimated_tokens`, `input_video_ms`) and,
--    once the provider succeeded, what it billed (`provider_tokens`, from the task's
--    usage.completion_tokens) and what that cost us (`provider_cost_micro_usd`).
-- 4. The generate route's per-address limit buckets IPv6 clients by /64, like every other
--    per-address limit (izgens.ip_bucket).
-- 5. A generation records how its references are used (`reference_mode`): as the first and
--    last frame, or (2.x) as multimodal references.
-- 6. The provider downloads a generation's own copies of its references (inputs/…, written
--    by `submit`); `inputs_deleted_at` records that the `inputs` job deleted them once the
--    generation ended.

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

insert into public.provider_prices (model, resolution, generate_audio, video_input, usd_per_mtok,
                                    effective_from, source)
select model, resolution, generate_audio, false, usd_per_mtok, '2026-11-25 00:00:00+00',
       'launch list price, no video input (byteplus-seedance.md §6.2)'
  from public.model_prices;

insert into public.provider_prices (model, resolution, generate_audio, video_input, usd_per_mtok,
                                    effective_from, source)
select m.model, r.resolution, a.audio, true, m.price, '2026-11-25 00:00:00+00',
       'launch list price, with video input (byteplus-seedance.md §6.2)'
  from (values
    ('dreamina-seedance-2-5-260628', '480p', 6.4), ('dreamina-seedance-2-5-260628', '720p', 6.4),
    ('dreamina-seedance-2-0-260128', '480p', 4.3), ('dreamina-seedance-2-0-260128', '720p', 4.3),
    ('dreamina-seedance-2-0-260128', '1080p', 4.7), ('dreamina-seedance-2-0-260128', '4k', 2.4),
    ('dreamina-seedance-2-0-fast-260128', '480p', 3.3), ('dreamina-seedance-2-0-fast-260128', '720p', 3.3),
    ('dreamina-seedance-2-0-mini-260615', '480p', 2.1), ('dreamina-seedance-2-0-mini-260615', '720p', 2.1)
  ) as m (model, resolution, price)
  cross join lateral (values (m.resolution)) as r (resolution)
  cross join lateral (values (false), (true)) as a (audio);

drop table public.model_prices;

create table public.video_input_floors (
  model text primary key,
  output_multiple numeric(6, 3) not null constraint video_input_floors_at_least_output
    check (output_multiple >= 1),
  note text
);

insert into public.video_input_floors (model, output_multiple, note)
select model, 2.1, 'UNCONFIRMED provider minimum for video input; see docs/generation.md'
  from (values ('dreamina-seedance-2-5-260628'), ('dreamina-seedance-2-0-260128'),
               ('dreamina-seedance-2-0-fast-260128'), ('dreamina-seedance-2-0-mini-260615')) m (model);

alter table public.provider_prices enable row level security;
alter table public.video_input_floors enable row level security;
revoke all on public.provider_prices, public.video_input_floors from anon, authenticated;

alter table public.generations
  add column input_video_ms int not null default 0
    constraint generations_input_video_ms_non_negative check (input_video_ms >= 0),
  add column estimated_tokens bigint,
  add column provider_tokens bigint
    constraint generations_provider_tokens_non_negative check (provider_tokens >= 0),
  add column provider_cost_micro_usd bigint,
  add column provider_price_from timestamptz,
  add column billed_at timestamptz,
  add column margin_checked_at timestamptz,
  add column reference_mode text constraint generations_reference_mode_known
    check (reference_mode in ('frames', 'reference')),
  add column inputs_deleted_at timestamptz;

-- the inputs job's queue: ended generations whose reference copies may still be stored
create index generations_inputs_to_delete on public.generations (finished_at)
  where inputs_deleted_at is null and reference_keys <> '{}'
    and status in ('completed', 'failed', 'canceled');

-- the margin check's queue: billed, final, not yet looked at
create index generations_margin_unchecked on public.generations (billed_at)
  where billed_at is not null and margin_checked_at is null;
create index generations_billed on public.generations (billed_at) where billed_at is not null;

-- ---------------------------------------------------------------------------------------
-- Prices

-- The provider's price row for a generation's tier at a moment (the newest version in force).
create or replace function izgens.provider_price(
  p_model text, p_resolution text, p_generate_audio boolean, p_video_input boolean,
  p_at timestamptz default now()
) returns public.provider_prices
language sql stable as $$
  select * from public.provider_prices
   where model = p_model and resolution = p_resolution
     and generate_audio = coalesce(p_generate_audio, false) and video_input = p_video_input
     and effective_from <= p_at
   order by effective_from desc
   limit 1;
$$;

-- The tokens the provider bills: the output's, plus the reference videos' on 2.x, never
-- below the video-input minimum (a multiple of the output's own tokens).
create or replace function izgens.billable_tokens(
  p_model text, p_output_tokens bigint, p_input_tokens bigint
) returns bigint
language sql stable as $$
  select case
    when coalesce(p_input_tokens, 0) <= 0 then p_output_tokens
    else greatest(
      p_output_tokens + p_input_tokens,
      ceil(p_output_tokens * coalesce(
        (select output_multiple from public.video_input_floors where model = p_model), 1))::bigint)
  end;
$$;

drop function if exists izgens.price_credits(text, text, boolean, bigint);

-- Credits for a generation: billable tokens at the provider's current price for its tier,
-- times the margin, in credits, rounded up. Refuses (IZ008) what has no price.
create or replace function izgens.price_credits(
  p_model text, p_resolution text, p_generate_audio boolean, p_output_tokens bigint,
  p_input_tokens bigint
) returns bigint
language plpgsql stable as $$
declare
  v_price public.provider_prices := izgens.provider_price(
    p_model, p_resolution, p_generate_audio, coalesce(p_input_tokens, 0) > 0);
  v_cost bigint;
begin
  if v_price.model is null then
    raise exception using errcode = 'IZ008', message = 'not_found',
      detail = format('no price for %s %s audio=%s video_input=%s', p_model, p_resolution,
                      p_generate_audio, coalesce(p_input_tokens, 0) > 0);
  end if;
  select ceil(izgens.billable_tokens(p_model, p_output_tokens, p_input_tokens)
              * v_price.usd_per_mtok / 1000000 * pr.margin / pr.usd_per_credit)
    into v_cost
    from public.pricing pr;
  return greatest(v_cost, 1);
end $$;

-- ---------------------------------------------------------------------------------------
-- Admission: as before (20261125000600), priced with the inputs, the plan recorded, and the
-- per-address bucket by izgens.ip_bucket.

drop function if exists izgens.start_generation(uuid, text, text, jsonb, bigint, inet, int, int, int, int);

create or replace function izgens.start_generation(
  p_user uuid,
  p_idempotency_key text,
  p_request_hash text,
  p_spec jsonb,
  p_output_tokens bigint,
  p_input_tokens bigint,
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
  perform izgens.require_ip_rate_limit('generate', p_client_ip, p_ip_limit, p_window_seconds);

  v_cost := izgens.price_credits(p_spec ->> 'model', p_spec ->> 'resolution',
                                 (p_spec ->> 'generate_audio')::boolean, p_output_tokens,
                                 p_input_tokens);
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
    reference_keys, reference_mode, cost, idempotency_key, request_hash, client_ip, recreated_from,
    input_video_ms, estimated_tokens,
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
    p_spec ->> 'mode',
    v_cost,
    p_idempotency_key,
    p_request_hash,
    p_client_ip,
    (p_spec ->> 'recreated_from')::uuid,
    coalesce((p_spec ->> 'input_video_ms')::int, 0),
    izgens.billable_tokens(p_spec ->> 'model', p_output_tokens, p_input_tokens),
    case when v_backlog then null else now() + make_interval(secs => p_submit_lease_seconds) end,
    case when v_backlog then null else now() end,
    case when v_backlog then 0 else 1 end
  ) returning * into v_gen;

  perform izgens.apply_ledger(p_user, -v_cost, 'generation', v_gen.id::text);

  return jsonb_build_object('created', true, 'submit', not v_backlog, 'generation', to_jsonb(v_gen));
end $$;

-- ---------------------------------------------------------------------------------------
-- The provider's bill, recorded when it reports success: the transition to `storing` is the
-- one call that holds the finished task. A generation whose copy then fails (and which is
-- refunded) was still billed, so its cost stays on record for the margin report.

drop function if exists izgens.claim_storing(uuid, int);

create or replace function izgens.claim_storing(
  p_id uuid, p_provider_tokens bigint default null, p_lease_seconds int default 300
) returns setof public.generations
language sql as $$
  update public.generations g
     set status = 'storing', storing_lease_until = now() + make_interval(secs => p_lease_seconds),
         checked_at = now(), updated_at = now(),
         provider_tokens = coalesce(g.provider_tokens, p_provider_tokens),
         billed_at = coalesce(g.billed_at, case when p_provider_tokens is not null then now() end),
         provider_cost_micro_usd = coalesce(g.provider_cost_micro_usd, (
           select ceil(p_provider_tokens * price.usd_per_mtok)::bigint
             from izgens.provider_price(g.model, g.resolution, g.generate_audio,
                                        g.input_video_ms > 0) price)),
         provider_price_from = coalesce(g.provider_price_from, (
           select price.effective_from
             from izgens.provider_price(g.model, g.resolution, g.generate_audio,
                                        g.input_video_ms > 0) price
            where p_provider_tokens is not null))
   where g.id = p_id
     and (g.status in ('submitted', 'running')
          or (g.status = 'storing' and g.storing_lease_until < now()))
  returning g.*;
$$;

-- ---------------------------------------------------------------------------------------
-- Margin: what a generation was charged (its credits at the credit's value when it ended
-- completed; nothing when it was refunded) against what the provider billed.

create or replace function izgens.charged_micro_usd(p_status text, p_cost bigint)
returns bigint
language sql stable as $$
  select case when p_status = 'completed'
              then floor(p_cost * pr.usd_per_credit * 1000000)::bigint else 0 end
    from public.pricing pr;
$$;

-- Per model and resolution since a moment: billed generations, credits charged, their
-- value, and the provider's cost (settled generations only: in-flight ones may still end
-- either way).
create or replace function izgens.margin_report(p_since timestamptz)
returns table (model text, resolution text, generations bigint, credits_charged bigint,
               charged_micro_usd bigint, provider_cost_micro_usd bigint, underpriced bigint)
language sql stable as $$
  select g.model, g.resolution, count(*),
         coalesce(sum(g.cost) filter (where g.status = 'completed'), 0)::bigint,
         sum(c.charged)::bigint,
         sum(g.provider_cost_micro_usd)::bigint,
         count(*) filter (where g.provider_cost_micro_usd > c.charged)
    from public.generations g
    cross join lateral (select izgens.charged_micro_usd(g.status, g.cost) as charged) c
   where g.billed_at >= p_since and g.status in ('completed', 'failed', 'canceled')
   group by g.model, g.resolution
   order by g.model, g.resolution;
$$;

-- Every settled, billed generation since a moment whose provider cost exceeded what it was
-- charged, oldest first.
create or replace function izgens.underpriced_generations(p_since timestamptz, p_limit int default 1000)
returns table (id uuid, model text, resolution text, duration int, input_video_ms int,
               status text, cost bigint, charged_micro_usd bigint, provider_tokens bigint,
               provider_cost_micro_usd bigint, billed_at timestamptz)
language sql stable as $$
  select g.id, g.model, g.resolution, g.duration, g.input_video_ms, g.status, g.cost,
         c.charged, g.provider_tokens, g.provider_cost_micro_usd, g.billed_at
    from public.generations g
    cross join lateral (select izgens.charged_micro_usd(g.status, g.cost) as charged) c
   where g.billed_at >= p_since and g.status in ('completed', 'failed', 'canceled')
     and g.provider_cost_micro_usd > c.charged
   order by g.billed_at, g.id
   limit p_limit;
$$;

-- The scheduled margin check: marks up to p_limit settled, billed, unchecked generations
-- as checked and answers {"checked": n, "underpriced": [...]}: each generation is looked at
-- (and reported) exactly once, also by concurrent runs.
create or replace function izgens.check_margins(p_limit int)
returns jsonb
language sql as $$
  with batch as (
    select g.id from public.generations g
     where g.billed_at is not null and g.margin_checked_at is null
       and g.status in ('completed', 'failed', 'canceled')
     order by g.billed_at
     limit p_limit
     for update skip locked
  ), checked as (
    update public.generations g set margin_checked_at = now()
      from batch where g.id = batch.id
    returning g.id, g.model, g.resolution, g.duration, g.input_video_ms, g.status, g.cost,
              g.provider_tokens, g.provider_cost_micro_usd,
              izgens.charged_micro_usd(g.status, g.cost) as charged_micro_usd
  )
  select jsonb_build_object(
    'checked', (select count(*) from checked),
    'underpriced', coalesce((select jsonb_agg(to_jsonb(c) order by c.id) from checked c
                              where c.provider_cost_micro_usd > c.charged_micro_usd), '[]'));
$$;

-- Ended generations whose reference copies are still to be deleted, oldest first. The
-- caller deletes the objects, then `inputs_deleted`: a run that dies in between leaves the
-- rows for the next one (deleting a missing object succeeds).
create or replace function izgens.inputs_to_delete(p_limit int)
returns table (id uuid, user_id uuid, reference_keys text[])
language sql stable as $$
  select g.id, g.user_id, g.reference_keys from public.generations g
   where g.inputs_deleted_at is null and g.reference_keys <> '{}'
     and g.status in ('completed', 'failed', 'canceled')
   order by g.finished_at
   limit p_limit;
$$;

create or replace function izgens.inputs_deleted(p_ids uuid[])
returns int
language sql as $$
  with done as (
    update public.generations set inputs_deleted_at = now()
     where id = any(p_ids) and inputs_deleted_at is null
    returning 1
  )
  select count(*)::int from done;
$$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
