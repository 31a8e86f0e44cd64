-- Hardening: per-address rate limits on every paid or costly action, folded into the call
-- each guards (one round trip, and a refused attempt rolls back everything it did), and
-- the address buckets they share with the failed sign-in counter (izgens.http).

-- The bucket of a client address: the address itself; for IPv6 its /64, since one
-- subscriber holds a whole /64 and could otherwise rotate through it. 'unknown' when none.
create or replace function izgens.ip_bucket(p_ip inet)
returns text
language sql immutable as $$
  select case
    when p_ip is null then 'unknown'
    when family(p_ip) = 6 then host(network(set_masklen(p_ip, 64))) || '/64'
    else host(p_ip)
  end;
$$;

-- The per-address limit of one action; no address (a caller we cannot place) is not
-- limited here, as in start_generation: the per-user limit still holds.
create or replace function izgens.require_ip_rate_limit(
  p_action text, p_ip inet, p_limit int, p_window_seconds int
) returns void
language plpgsql as $$
begin
  if p_ip is not null then
    perform izgens.require_rate_limit(
      p_action || ':ip:' || izgens.ip_bucket(p_ip), p_limit, p_window_seconds);
  end if;
end $$;

-- register_upload (gates, per-user limit, the row) and then the per-address limit. The
-- address is checked last so its counter only moves for an upload that is otherwise
-- admitted; a refusal raises IZ006 and the whole call, row included, is rolled back.
create or replace function izgens.register_upload_limited(
  p_user uuid, p_key text, p_kind text, p_content_type text, p_bytes bigint,
  p_retention_hours int, p_limit int, p_window_seconds int,
  p_client_ip inet, p_ip_limit int
) returns public.reference_uploads
language plpgsql as $$
declare
  v_upload public.reference_uploads;
begin
  v_upload := izgens.register_upload(p_user, p_key, p_kind, p_content_type, p_bytes,
                                     p_retention_hours, p_limit, p_window_seconds);
  perform izgens.require_ip_rate_limit('upload', p_client_ip, p_ip_limit, p_window_seconds);
  return v_upload;
end $$;

-- start_checkout and then the per-address limit, only for a purchase this call created:
-- a retried click (same Idempotency-Key) returns its purchase without counting, as the
-- per-user limit does.
create or replace function izgens.start_checkout_limited(
  p_user uuid, p_pack text, p_idempotency_key text, p_client_ip inet,
  p_limit int, p_window int, p_ip_limit int
) returns public.purchases
language plpgsql as $$
declare
  v_p public.purchases;
begin
  v_p := izgens.start_checkout(p_user, p_pack, p_idempotency_key, p_client_ip, p_limit, p_window);
  if v_p.created_at = now() then  -- inserted by this transaction
    perform izgens.require_ip_rate_limit('checkout', p_client_ip, p_ip_limit, p_window);
  end if;
  return v_p;
end $$;

-- request_export and then the per-address limit.
create or replace function izgens.request_export_limited(
  p_user uuid, p_limit int, p_window_seconds int, p_client_ip inet, p_ip_limit int
) returns public.data_exports
language plpgsql as $$
declare
  v_export public.data_exports;
begin
  v_export := izgens.request_export(p_user, p_limit, p_window_seconds);
  perform izgens.require_ip_rate_limit('export', p_client_ip, p_ip_limit, p_window_seconds);
  return v_export;
end $$;

revoke all on all functions in schema izgens from public;
revoke all on all functions in schema izgens from anon, authenticated, service_role;
