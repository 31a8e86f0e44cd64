-- Buying credits with Plisio: checkout, the invoice, the verified callback and the
-- reconciliation sweep, each one SQL function (one transaction, one round trip).
--
-- A Plisio event is matched to a purchase by `order_number`, which is our purchase id, and
-- never by `txn_id` alone: the txn id changes when the buyer switches coin. A purchase's
-- status only moves forward (pending < expired/cancelled/error < completed/mismatch), and
-- its pack is credited at most once (izgens.credit_purchase, unique ledger (reason, ref)).
--
-- Flags for support: payment_events.flagged says what was wrong with that event;
-- purchases.flagged keeps the first flag a purchase got (a credit clears the two that only
-- wait for more money).
--   unknown_order       verified, but the order_number is not one of our purchases
--   currency_mismatch   source_currency is not the purchase's currency: nothing applied
--   amount_mismatch     source_amount is not the purchase's price: nothing applied
--   txn_conflict        the txn_id is recorded on another purchase: nothing applied
--   unknown_status      a status Plisio never documented: stored, nothing applied
--   partial_payment     expired with money received: no credit (refund or top up by hand)
--   underpaid_mismatch  a mismatch that paid less than due: no credit
--   owner_deleted       paid, but the buyer's account was purged: no credit (refund by hand)

-- ---------------------------------------------------------------------------------------
-- Checkout

-- Admission of a purchase in one call: gates, idempotency per user, the per-user and
-- per-address limits, the pack, and a `pending` row. The profile lock makes concurrent
-- clicks with one key queue, so the second sees the first's row and gets it back; a
-- retried click counts against no limit.
create or replace function izgens.start_checkout(
  p_user uuid,
  p_pack text,
  p_idempotency_key text,
  p_client_ip inet,
  p_limit int,
  p_window int,
  p_ip_limit int
) returns public.purchases
language plpgsql as $$
declare
  v_profile public.profiles;
  v_pack public.credit_packs;
  v_p public.purchases;
begin
  if p_idempotency_key is null or char_length(p_idempotency_key) not between 1 and 255 then
    raise exception using errcode = 'IZ009', message = 'invalid_argument',
      detail = 'the Idempotency-Key must be 1 to 255 characters';
  end if;

  select * into v_profile from public.profiles where user_id = p_user for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'profile';
  end if;
  -- gates first: a blocked account does not get an invoice by replaying an old click
  perform izgens.require_account_open(v_profile);

  select * into v_p from public.purchases
   where user_id = p_user and idempotency_key = p_idempotency_key;
  if found then
    if v_p.pack_id is distinct from p_pack then
      raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
        detail = 'this Idempotency-Key was used with another request body';
    end if;
    return v_p;  -- a retried click: no rate-limit hit, the same purchase
  end if;

  perform izgens.require_rate_limit('checkout:user:' || p_user, p_limit, p_window);
  perform izgens.require_ip_rate_limit('checkout', p_client_ip, p_ip_limit, p_window);

  select * into v_pack from public.credit_packs where id = p_pack and active;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'pack';
  end if;

  insert into public.purchases (
    user_id, pack_id, credits, amount, currency, status, idempotency_key, client_ip
  ) values (
    p_user, v_pack.id, v_pack.credits, v_pack.price, v_pack.currency, 'pending',
    p_idempotency_key, p_client_ip
  ) returning * into v_p;
  return v_p;
end $$;

-- Records the invoice Plisio made for a purchase. The first invoice wins: a concurrent
-- click that got the same invoice (return_existing) changes nothing.
create or replace function izgens.attach_invoice(p_purchase uuid, p_txn_id text, p_invoice_url text)
returns public.purchases
language plpgsql as $$
declare
  v_p public.purchases;
begin
  if coalesce(p_txn_id, '') = '' or coalesce(p_invoice_url, '') = '' then
    raise exception using errcode = 'IZ009', message = 'invalid_argument',
      detail = 'txn_id and invoice_url are required';
  end if;
  select * into v_p from public.purchases where id = p_purchase for update;
  if not found then
    raise exception using errcode = 'IZ008', message = 'not_found', detail = 'purchase';
  end if;
  if v_p.invoice_url is not null then
    return v_p;
  end if;
  if v_p.plisio_txn_id is null and exists (
    select 1 from public.purchases where plisio_txn_id = p_txn_id and id <> p_purchase
  ) then
    raise exception using errcode = 'IZ002', message = 'idempotency_conflict',
      detail = 'this invoice belongs to another purchase';
  end if;
  update public.purchases
     set invoice_url = p_invoice_url,
         plisio_txn_id = coalesce(plisio_txn_id, p_txn_id),
         updated_at = now()
   where id = p_purchase
  returning * into v_p;
  return v_p;
end $$;

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
-- Payment events

-- A decimal amount as Plisio sends it ("10.300000", "10.", 7), or null for anything else,
-- including values too large for purchases.paid_amount: a verified event never fails on a
-- number.
create or replace function izgens._plisio_amount(p_value text)
returns numeric
language sql immutable as $$
  select case
    when char_length(p_value) <= 64
     and p_value ~ '^\s*-?([0-9]{1,15}(\.[0-9]*)?|\.[0-9]+)\s*$'
    then round(trim(p_value)::numeric, 8)
  end
$$;

create or replace function izgens._purchase_rank(p_status text)
returns int
language sql immutable as $$
  select case
    when p_status = 'pending' then 0
    when p_status in ('expired', 'cancelled', 'error') then 1
    when p_status in ('completed', 'mismatch') then 2
  end
$$;

-- THE webhook: stores one verified Plisio event (a callback, or an operation read back by
-- reconciliation) and applies it to its purchase, in one transaction. An event seen before
-- (same canonical sha256, payment_events.body_sha256) is recognised and changes nothing.
-- Answers {event_id, duplicate, purchase_id, status, credited, flagged}; `credited` is
-- true for the one call that credited the pack.
create or replace function izgens.record_payment_event(
  p_payload jsonb, p_body_sha256 text, p_source text
) returns jsonb
language plpgsql as $$
declare
  v_order text;
  v_txn text;
  v_status text;
  v_purchase uuid;
  v_event_id bigint;
  v_event public.payment_events;
  v_p public.purchases;
  v_target text;
  v_rank int;
  v_current_rank int;
  v_paid numeric;
  v_due numeric;
  v_pending numeric;
  v_fully_paid boolean;
  v_pays boolean;
  v_blocked text;  -- the event is not applied at all
  v_note text;     -- applied, but support should look
  v_credited boolean := false;
begin
  if p_payload is null or jsonb_typeof(p_payload) <> 'object' then
    raise exception using errcode = 'IZ009', message = 'invalid_argument',
      detail = 'the payload must be a JSON object';
  end if;
  if p_body_sha256 is null or p_body_sha256 !~ '^[0-9a-f]{64}$' then
    raise exception using errcode = 'IZ009', message = 'invalid_argument',
      detail = 'body_sha256 must be 64 lowercase hex digits';
  end if;
  if p_source is null or p_source not in ('callback', 'reconciliation') then
    raise exception using errcode = 'IZ009', message = 'invalid_argument',
      detail = 'source must be callback or reconciliation';
  end if;

  v_order := p_payload ->> 'order_number';
  v_txn := nullif(p_payload ->> 'txn_id', '');
  v_status := p_payload ->> 'status';

  -- order_number is our purchase id; anything else is an order we do not know. The row
  -- lock comes before the event insert: that insert's foreign key takes a KEY SHARE lock on
  -- the purchase, which a later FOR UPDATE would deadlock against in a concurrent event.
  if v_order ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    select * into v_p from public.purchases where id = v_order::uuid for update;
    v_purchase := v_p.id;
  end if;

  -- a concurrent copy of this body waits on the purchase lock (or, for an unknown order, on
  -- the unique index) and then finds it stored: a duplicate
  insert into public.payment_events (
    purchase_id, order_number, txn_id, status, body_sha256, payload, source, flagged
  ) values (
    v_purchase, v_order, v_txn, v_status, p_body_sha256, p_payload, p_source,
    case when v_purchase is null then 'unknown_order' end
  )
  on conflict (body_sha256) do nothing
  returning id into v_event_id;

  if v_event_id is null then
    select * into v_event from public.payment_events where body_sha256 = p_body_sha256;
    return jsonb_build_object(
      'event_id', v_event.id,
      'duplicate', true,
      'purchase_id', v_event.purchase_id,
      'status', (select status from public.purchases where id = v_event.purchase_id),
      'credited', false,
      'flagged', v_event.flagged
    );
  end if;

  if v_purchase is null then
    return jsonb_build_object(
      'event_id', v_event_id, 'duplicate', false, 'purchase_id', null, 'status', null,
      'credited', false, 'flagged', 'unknown_order'
    );
  end if;

  -- statuses that never move a purchase: `new` (nothing paid yet) and `cancelled
  -- duplicate` (the invoice abandoned on a coin switch; its money, if any, is on a sibling)
  v_target := case
    when v_status in ('pending', 'pending internal') then 'pending'
    when v_status in ('completed', 'mismatch', 'expired', 'cancelled', 'error') then v_status
  end;

  if upper(coalesce(p_payload ->> 'source_currency', '')) <> upper(v_p.currency) then
    v_blocked := 'currency_mismatch';
  elsif izgens._plisio_amount(p_payload ->> 'source_amount') is distinct from v_p.amount then
    v_blocked := 'amount_mismatch';
  elsif v_target is null and coalesce(v_status, '') not in ('new', 'cancelled duplicate') then
    v_blocked := 'unknown_status';
  elsif v_txn is not null and exists (
    select 1 from public.purchases where plisio_txn_id = v_txn and id <> v_p.id
  ) then
    v_blocked := 'txn_conflict';
  end if;

  if v_blocked is null and v_target is not null then
    -- paid vs due, both in the coin: `amount` received against `invoice_total_sum` (what
    -- the buyer had to send), else Plisio's own `pending_amount` (<= 0 when fully paid)
    v_paid := izgens._plisio_amount(p_payload ->> 'amount');
    v_due := coalesce(izgens._plisio_amount(p_payload ->> 'invoice_total_sum'),
                      izgens._plisio_amount(p_payload ->> 'invoice_sum'));
    v_pending := izgens._plisio_amount(p_payload ->> 'pending_amount');
    v_fully_paid := case
      when v_paid is not null and v_due is not null then v_paid >= v_due
      when v_pending is not null then v_pending <= 0
      else false
    end;
    v_pays := v_target = 'completed' or (v_target = 'mismatch' and v_fully_paid);
    if v_target = 'mismatch' and not v_fully_paid then
      v_note := 'underpaid_mismatch';
    elsif v_target = 'expired' and coalesce(v_paid, 0) > 0 then
      v_note := 'partial_payment';
    end if;

    v_rank := izgens._purchase_rank(v_target);
    v_current_rank := izgens._purchase_rank(v_p.status);
    -- forward only; the same status again refreshes what Plisio reported; a paying event
    -- still lands on a purchase that is final but was never credited
    if v_rank > v_current_rank or v_target = v_p.status or (v_pays and v_p.credited_at is null) then
      update public.purchases
         set status = case when v_rank > v_current_rank or v_pays then v_target else status end,
             provider_status = v_status,
             plisio_txn_id = coalesce(v_txn, plisio_txn_id),
             paid_amount = coalesce(v_paid, paid_amount),
             paid_currency = coalesce(nullif(p_payload ->> 'currency', ''),
                                      nullif(p_payload ->> 'psys_cid', ''), paid_currency),
             updated_at = now()
       where id = v_p.id
      returning * into v_p;

      if v_pays and v_p.credited_at is null then
        if v_p.user_id is null then
          v_note := 'owner_deleted';  -- the money arrived for an account that is gone
        else
          select * into v_p from izgens.credit_purchase(v_p.id);
          v_credited := true;
          if v_p.flagged in ('partial_payment', 'underpaid_mismatch') then
            update public.purchases set flagged = null where id = v_p.id returning * into v_p;
          end if;
        end if;
      end if;
    else
      v_note := null;  -- late news about a purchase that moved on: nothing for support
    end if;
  end if;

  if coalesce(v_blocked, v_note) is not null then
    update public.payment_events set flagged = coalesce(v_blocked, v_note) where id = v_event_id;
    update public.purchases
       set flagged = coalesce(flagged, v_blocked, v_note), updated_at = now()
     where id = v_p.id
    returning * into v_p;
  end if;

  return jsonb_build_object(
    'event_id', v_event_id,
    'duplicate', false,
    'purchase_id', v_p.id,
    'status', v_p.status,
    'credited', v_credited,
    'flagged', coalesce(v_blocked, v_note)
  );
end $$;

-- ---------------------------------------------------------------------------------------
-- Reconciliation

-- Hands out up to p_limit purchases pending for longer than p_older_than_seconds, least
-- recently checked first, and stamps them so a concurrent or next run moves on to others
-- (no purchase that Plisio never heard of can starve the rest).
create or replace function izgens.claim_reconciliation(
  p_older_than_seconds int, p_limit int, p_recheck_seconds int
) returns setof public.purchases
language sql as $$
  with claimed as (
    update public.purchases p
       set reconciled_at = now()
     where p.id in (
       select id from public.purchases
        where status = 'pending'
          and created_at < now() - make_interval(secs => p_older_than_seconds)
          and (reconciled_at is null
               or reconciled_at < now() - make_interval(secs => p_recheck_seconds))
        order by reconciled_at nulls first, created_at
        limit greatest(p_limit, 0)
        for update skip locked
     )
    returning p.*
  )
  select * from claimed order by created_at, id;
$$;

-- A pending purchase that never got an invoice (Plisio failed at checkout and the buyer
-- never retried) and is older than p_older_than_seconds: expired, once reconciliation has
-- found no invoice for it at Plisio either. A payment that shows up later still completes
-- it (record_payment_event moves expired forward to completed).
create or replace function izgens.expire_uninvoiced_purchase(
  p_purchase uuid, p_older_than_seconds int
) returns setof public.purchases
language sql as $$
  update public.purchases
     set status = 'expired', updated_at = now()
   where id = p_purchase
     and status = 'pending' and plisio_txn_id is null and invoice_url is null
     and created_at < now() - make_interval(secs => greatest(p_older_than_seconds, 0))
  returning *;
$$;

-- ---------------------------------------------------------------------------------------
-- The buyer's reads

create or replace function izgens.active_packs(p_user uuid)
returns setof public.credit_packs
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query select * from public.credit_packs where active order by sort_order, id;
end $$;

create or replace function izgens.purchases_page(
  p_user uuid, p_before_at timestamptz, p_before_id uuid, p_limit int
) returns setof public.purchases
language plpgsql as $$
begin
  perform izgens.require_user(p_user);
  return query
    select * from public.purchases
     where user_id = p_user
       and (p_before_at is null or (created_at, id) < (p_before_at, p_before_id))
     order by created_at desc, id desc
     limit greatest(p_limit, 0);
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
