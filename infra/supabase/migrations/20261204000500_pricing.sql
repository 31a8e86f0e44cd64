-- Charge what the provider bills (reference/byteplus-seedance.md §6): the price of a
-- generation in credits, and the margin check of what it was charged against what the
-- provider billed (docs/generation.md).
--
-- 2.x generations with a reference video are billed at the "with video input" price, for
-- the reference videos' seconds plus the output's, and never below a minimum that is
-- UNCONFIRMED in the reference (`video_input_floors`, a row per model operators change).

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

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
