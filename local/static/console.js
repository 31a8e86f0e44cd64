// izgens dev console: plain JavaScript, no build step. It calls the same public routes a real
// frontend would (same origin as the dev server), with the signed-in user's Bearer token.
// Every failed call shows its problem+json body instead of breaking the page.
"use strict";

const STORE = "izgens.console.session";
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const OPEN_PURCHASE = new Set(["new", "pending", "created"]);
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let session = loadSession();
let references = []; // keys of uploaded reference files for the next generation
let models = []; // GET /generate/models: what each model offers
let historyCursor = null;
let generation = 0; // bumps on sign-in/out so old pollers stop
const watching = new Set();

// --- session --------------------------------------------------------------------------------

function loadSession() {
  try {
    const value = JSON.parse(localStorage.getItem(STORE) || "null");
    return value && value.access_token ? value : null;
  } catch {
    return null;
  }
}

function saveSession(value) {
  session = value;
  if (value) localStorage.setItem(STORE, JSON.stringify(value));
  else localStorage.removeItem(STORE);
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `k-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// --- HTTP -----------------------------------------------------------------------------------

class Problem extends Error {
  constructor(method, path, status, body) {
    const title = body && typeof body === "object" ? body.title || body.code : body;
    super(`${method} ${path} → ${status || "network error"}${title ? `: ${title}` : ""}`);
    this.status = status;
    this.body = body;
  }
}

async function parseBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function api(method, path, { body, key, retried = false } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (session) headers.Authorization = `Bearer ${session.access_token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Problem(method, path, 0, { title: "network error", detail: String(err) });
  }
  // dev tokens expire after an hour: sign in again as the same email, once, same key
  if (response.status === 401 && !retried && session && session.email) {
    await signIn(session.email, { quiet: true });
    return api(method, path, { body, key, retried: true });
  }
  const data = await parseBody(response);
  if (!response.ok) throw new Problem(method, path, response.status, data);
  return data;
}

function showProblem(err) {
  const box = $("problem");
  let text = err && err.message ? err.message : String(err);
  if (err instanceof Problem && err.body && typeof err.body === "object") {
    text += `\n${JSON.stringify(err.body, null, 2)}`;
  } else if (err instanceof Problem && err.body) {
    text += `\n${String(err.body).slice(0, 2000)}`;
  }
  box.textContent = text;
  box.hidden = false;
  // eslint-disable-next-line no-console
  console.warn(text);
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

function clearMessages() {
  $("problem").hidden = true;
  notice("");
}

// Runs a user action: clears old messages, disables the button meanwhile, shows any problem.
function act(button, fn) {
  return async (event) => {
    if (event) event.preventDefault();
    clearMessages();
    if (button) button.disabled = true;
    try {
      await fn(event);
    } catch (err) {
      showProblem(err);
    } finally {
      if (button) button.disabled = false;
    }
  };
}

// Loads a part of the page; a failure shows its problem but never stops the other parts.
async function soft(fn) {
  try {
    await fn();
  } catch (err) {
    showProblem(err);
  }
}

// --- small DOM helpers ----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// --- sign in --------------------------------------------------------------------------------

async function signIn(email, { quiet = false } = {}) {
  const response = await fetch("/dev/users", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email }),
  });
  const data = await parseBody(response);
  if (!response.ok) throw new Problem("POST", "/dev/users", response.status, data);
  saveSession({ email, user_id: data.user_id, access_token: data.access_token });
  if (!quiet) await enter();
}

function signOut() {
  saveSession(null);
  generation += 1;
  watching.clear();
  references = [];
  $("app").hidden = true;
  $("whoami").textContent = "";
  $("sign-out").hidden = true;
  $("generations").replaceChildren();
}

async function enter() {
  generation += 1;
  watching.clear();
  $("app").hidden = false;
  $("whoami").textContent = `signed in as ${session.email} (${session.user_id})`;
  $("email").value = session.email;
  $("sign-out").hidden = false;
  await Promise.all([
    soft(loadAccount),
    soft(loadLedger),
    soft(loadPacks),
    soft(loadPurchases),
    soft(async () => {
      await loadModels();
      await loadQuote();
    }),
    soft(() => loadHistory(false)),
  ]);
}

// --- account --------------------------------------------------------------------------------

async function loadAccount() {
  const me = await api("GET", "/account/me");
  $("balance").textContent = String(me.balance);
  $("age").textContent = me.age_confirmed ? "age confirmed" : "age not confirmed";
  $("confirm-age").hidden = Boolean(me.age_confirmed);
  // the account is the one source of this line; the buttons only report through notices
  $("deletion-status").textContent = me.deletion_scheduled_for
    ? `deletion scheduled for ${when(me.deletion_scheduled_for)}`
    : "no deletion scheduled";
  return me;
}

async function loadLedger() {
  const page = await api("GET", "/account/ledger?limit=20");
  $("ledger").replaceChildren(
    ...page.items.map((e) =>
      el(
        "tr",
        {},
        el("td", { text: when(e.created_at) }),
        el("td", { text: e.delta > 0 ? `+${e.delta}` : String(e.delta) }),
        el("td", { text: String(e.balance_after) }),
        el("td", { text: e.reason }),
        el("td", { class: "muted", text: e.ref }),
      ),
    ),
  );
}

async function refreshMoney() {
  await Promise.all([soft(loadAccount), soft(loadLedger), soft(loadPurchases)]);
}

// --- buying credits -------------------------------------------------------------------------

async function loadPacks() {
  const packs = await api("GET", "/account/packs");
  $("packs").replaceChildren(
    ...packs.map((pack) => {
      const button = el("button", {
        "data-testid": `buy-${pack.id}`,
        "data-pack": pack.id,
        text: `Buy ${pack.credits} credits for ${pack.price} ${pack.currency}`,
      });
      button.addEventListener("click", act(button, () => checkout(pack)));
      return button;
    }),
  );
}

let currentPurchase = null;

async function checkout(pack) {
  const result = await api("POST", "/account/checkout", {
    body: { pack_id: pack.id },
    key: newKey(),
  });
  currentPurchase = result;
  $("checkout").hidden = false;
  $("purchase-id").textContent = result.purchase_id;
  $("purchase-status").textContent = result.status;
  const link = $("invoice-link");
  link.hidden = !result.invoice_url;
  if (result.invoice_url) link.href = result.invoice_url;
  await soft(loadPurchases);
  watchPurchase(result.purchase_id);
}

async function payInSimulator() {
  if (!currentPurchase) return;
  await api("POST", "/dev/plisio/pay", {
    body: { purchase_id: currentPurchase.purchase_id, status: "completed" },
  });
  await refreshMoney();
  await findPurchase(currentPurchase.purchase_id);
}

async function loadPurchases() {
  const page = await api("GET", "/account/purchases?limit=20");
  $("purchases").replaceChildren(
    ...page.items.map((p) =>
      el(
        "tr",
        { "data-purchase": p.id },
        el("td", { text: when(p.created_at) }),
        el("td", { text: p.pack_id }),
        el("td", { text: String(p.credits) }),
        el("td", { text: `${p.amount} ${p.currency}` }),
        el("td", { text: p.status }),
      ),
    ),
  );
  return page.items;
}

async function findPurchase(purchaseId) {
  const items = await loadPurchases();
  const found = items.find((p) => p.id === purchaseId);
  if (found && currentPurchase && currentPurchase.purchase_id === purchaseId) {
    $("purchase-status").textContent = found.status;
  }
  return found;
}

// While a purchase is open (the buyer pays in another tab), watch it and credit the balance.
async function watchPurchase(purchaseId) {
  const mine = generation;
  for (let i = 0; i < 300 && mine === generation; i += 1) {
    await sleep(2000);
    let found;
    try {
      found = await findPurchase(purchaseId);
    } catch {
      continue;
    }
    if (found && !OPEN_PURCHASE.has(found.status)) {
      await refreshMoney();
      if (found.credited_at) notice(`Purchase ${purchaseId} is ${found.status}: +${found.credits} credits`);
      return;
    }
  }
}

// --- generating -----------------------------------------------------------------------------

const MODE_LABELS = { frames: "first / last frame", reference: "references" };

function currentModel() {
  return models.find((m) => m.id === $("model").value) || models[0];
}

function options(select, values, { labels = {}, fallback = "" } = {}) {
  const keep = select.value;
  select.replaceChildren(
    ...values.map((value) => el("option", { value, text: labels[value] || value })),
  );
  select.value = values.includes(keep) ? keep : fallback;
}

// The form offers exactly what the chosen model takes (the catalog the prices use).
function renderForm() {
  const model = currentModel();
  if (!model) return;
  options($("mode"), model.modes, { labels: MODE_LABELS, fallback: model.default_mode });
  options($("resolution"), model.resolutions, { fallback: model.default_resolution });
  // "" sends no ratio: the model's default, which can depend on the references (the quote
  // shows the one chosen)
  options($("ratio"), ["", ...model.ratios], { labels: { "": "model default" }, fallback: "" });
  const [low, high] = model.durations;
  const duration = $("duration");
  duration.min = String(low);
  duration.max = String(high);
  if (!duration.value || Number(duration.value) < low || Number(duration.value) > high) {
    duration.value = String(model.default_duration);
  }
  $("audio-field").hidden = !model.audio;
  if (!model.audio) $("audio").checked = false;
  $("seed-field").hidden = !model.seed;
  $("camera-field").hidden = !model.camera_fixed;
  const limits = [];
  if ($("mode").value === "frames") {
    limits.push(model.frames === 2 ? "1 image: first frame, 2: first and last" : "1 image: the first frame");
  } else {
    if (model.image_references) limits.push(`up to ${model.image_references.max_count} images`);
    if (model.video_references) {
      const v = model.video_references;
      limits.push(`up to ${v.max_count} videos of ${v.seconds_each[0]}-${v.seconds_each[1]} s, ${v.seconds_total} s in all`);
    }
  }
  $("model-limits").textContent = limits.join(", ");
  renderReferences();
}

async function loadModels() {
  models = await api("GET", "/generate/models");
  options($("model"), models.map((m) => m.id), {
    labels: Object.fromEntries(models.map((m) => [m.id, m.name])),
    fallback: $("model").value || models.find((m) => m.id === "seedance-1-0-pro-fast-251015")?.id || models[0].id,
  });
  renderForm();
}

// The body a generation (and its quote) sends: every choice explicit.
function spec({ forQuote = false } = {}) {
  const model = currentModel();
  const body = { model: model.id, mode: $("mode").value };
  const prompt = $("prompt").value.trim();
  if (prompt || !forQuote) body.prompt = prompt;
  body.resolution = $("resolution").value;
  if ($("ratio").value) body.ratio = $("ratio").value;
  if ($("duration").value) body.duration = Number($("duration").value);
  if (model.audio) body.generate_audio = $("audio").checked;
  if (model.seed && $("seed").value !== "") body.seed = Number($("seed").value);
  if (model.camera_fixed) body.camera_fixed = $("camera-fixed").checked;
  if (references.length) body.reference_keys = [...references];
  return body;
}

// The quote for exactly what Generate would send, refreshed on every change; the newest
// answer wins (requests can overtake each other).
let quoteSeq = 0;
async function loadQuote() {
  if (!models.length) return;
  const mine = (quoteSeq += 1);
  const line = $("quote");
  line.dataset.state = "pending";
  try {
    const q = await api("POST", "/generate/quote", { body: spec({ forQuote: true }) });
    if (mine !== quoteSeq) return;
    const input = q.reference_video_seconds ? ` + ${q.reference_video_seconds} s of reference video` : "";
    line.textContent = `${q.credits} credits (${q.model}, ${q.resolution}, ${q.ratio}, ${q.duration} s${q.generate_audio ? ", audio" : ""}${input})`;
    line.dataset.credits = String(q.credits);
    line.dataset.state = "ok";
    line.className = "";
  } catch (err) {
    if (mine !== quoteSeq) return;
    const detail = err.body && err.body.detail ? err.body.detail : err.message;
    line.textContent = `cannot be priced: ${detail}`;
    delete line.dataset.credits;
    line.dataset.state = "refused";
    line.className = "problem";
  }
}

let quoteTimer = null;
function requote(delay = 0) {
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(() => soft(loadQuote), delay);
}

async function uploadReference(file) {
  const upload = await api("POST", "/generate/uploads", {
    body: { filename: file.name, content_type: file.type || "application/octet-stream", bytes: file.size },
  });
  // the browser sends the file straight to the bucket: a form with the presigned policy's
  // fields (POST, AWS S3), or the bare file with the signed headers (PUT, Supabase Storage;
  // the browser sets Content-Length from the file, which the signature pins too)
  const request =
    upload.method === "PUT"
      ? { method: "PUT", headers: upload.headers, body: file }
      : { method: "POST", body: formOf(upload.fields, file) };
  let response;
  try {
    response = await fetch(upload.url, request);
  } catch (err) {
    throw new Problem(request.method, upload.url, 0, { title: "upload failed", detail: String(err) });
  }
  if (!response.ok) throw new Problem(request.method, upload.url, response.status, await parseBody(response));
  references.push(upload.key);
  renderReferences();
  notice(`Uploaded ${file.name} as ${upload.key}`);
}

function referenceKind(key) {
  return /\.(mp4|mov)$/.test(key) ? "video" : "image";
}

function formOf(fields, file) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", file);
  return form;
}

function renderReferences() {
  const frames = $("mode").value === "frames";
  $("references").replaceChildren(
    ...references.map((key, index) => {
      const kind = referenceKind(key);
      const role = frames ? (index === 0 ? "first frame" : "last frame") : `reference ${kind}`;
      const remove = el("button", { type: "button", text: "remove", "data-testid": "remove-reference" });
      remove.addEventListener("click", () => {
        references.splice(index, 1);
        renderReferences();
        requote();
      });
      return el("li", { "data-testid": "reference", "data-kind": kind }, el("span", { text: `${role}: ${key} ` }), remove);
    }),
  );
}

async function generate() {
  const body = spec();
  const gen = await api("POST", "/generate/generations", { body, key: newKey() });
  references = [];
  renderReferences();
  $("reference-file").value = "";
  requote();
  showGeneration(gen, { first: true });
  await soft(loadAccount);
  await soft(loadLedger);
}

async function recreate(id) {
  const gen = await api("POST", `/generate/generations/${id}/recreate`, { body: {}, key: newKey() });
  showGeneration(gen, { first: true });
  await soft(loadAccount);
  await soft(loadLedger);
}

async function remove(id) {
  await api("DELETE", `/status/generations/${id}`);
  const card = document.querySelector(`[data-generation="${id}"]`);
  if (card) card.remove();
  watching.delete(id);
  notice(`Deleted generation ${id}`);
}

// --- history and status ---------------------------------------------------------------------

async function loadHistory(more) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && historyCursor) query.set("cursor", historyCursor);
  const page = await api("GET", `/status/generations?${query}`);
  if (!more) $("generations").replaceChildren();
  for (const gen of page.items) showGeneration(gen, { first: false });
  historyCursor = page.next_cursor;
  $("more-history").hidden = !historyCursor;
}

function showGeneration(gen, { first }) {
  let card = document.querySelector(`[data-generation="${gen.id}"]`);
  if (!card) {
    card = el("div", { class: "generation", "data-generation": gen.id, "data-testid": "generation" });
    card.timeline = [];
    const list = $("generations");
    if (first) list.prepend(card);
    else list.append(card);
  }
  renderGeneration(card, gen);
  if (!TERMINAL.has(gen.status)) watch(gen.id);
}

function renderGeneration(card, gen) {
  if (card.timeline[card.timeline.length - 1] !== gen.status) card.timeline.push(gen.status);
  card.dataset.status = gen.status;
  const header = el(
    "div",
    { class: "row" },
    el("span", { class: `status ${gen.status}`, "data-testid": "generation-status", text: gen.status }),
    el("span", { class: "muted", "data-testid": "timeline", text: card.timeline.join(" → ") }),
    el("span", {
      class: "muted",
      text: `${gen.model} · ${gen.resolution} · ${gen.ratio} · ${gen.duration} s · ${gen.cost} credits · seed ${gen.seed}`,
    }),
  );
  const parts = [header, el("div", { text: gen.prompt })];
  const meta = [`created ${when(gen.created_at)}`];
  if (gen.completed_at) meta.push(`completed ${when(gen.completed_at)}`);
  if (gen.recreated_from) meta.push(`recreated from ${gen.recreated_from}`);
  if (gen.reference_keys && gen.reference_keys.length) meta.push(`${gen.reference_keys.length} reference(s)`);
  parts.push(el("div", { class: "muted", text: `${gen.id} · ${meta.join(" · ")}` }));
  if (gen.error) {
    parts.push(el("div", { class: "problem", text: `${gen.error.code}${gen.error.message ? `: ${gen.error.message}` : ""}` }));
  }
  const old = card.querySelector("video");
  if (gen.status === "completed" && gen.video_url) {
    // keep a playing element when nothing changed; presigned URLs differ on every read
    const video =
      old ||
      el("video", {
        controls: true,
        muted: true,
        playsinline: true,
        preload: "auto",
        "data-testid": "video",
      });
    video.muted = true;
    if (!old) {
      video.src = gen.video_url;
      video.addEventListener("error", () => refreshVideo(card, gen.id), { once: true });
    }
    parts.push(video);
  }
  const recreateButton = el("button", { "data-testid": "recreate", text: "Recreate" });
  recreateButton.addEventListener("click", act(recreateButton, () => recreate(gen.id)));
  const deleteButton = el("button", { "data-testid": "delete", text: "Delete" });
  deleteButton.addEventListener("click", act(deleteButton, () => remove(gen.id)));
  parts.push(el("div", { class: "row" }, recreateButton, deleteButton));
  card.replaceChildren(...parts);
}

// A presigned video URL expires: on a load error, read the generation again for a fresh one.
async function refreshVideo(card, id) {
  try {
    const gen = await api("GET", `/status/generations/${id}`);
    const video = card.querySelector("video");
    if (video && gen.video_url) video.src = gen.video_url;
  } catch (err) {
    showProblem(err);
  }
}

async function watch(id) {
  if (watching.has(id)) return;
  watching.add(id);
  const mine = generation;
  try {
    while (mine === generation && watching.has(id)) {
      await sleep(POLL_MS);
      if (mine !== generation || !watching.has(id)) return;
      let gen;
      try {
        gen = await api("GET", `/status/generations/${id}`);
      } catch (err) {
        if (err instanceof Problem && err.status === 404) return; // deleted meanwhile
        showProblem(err);
        await sleep(POLL_MS * 4);
        continue;
      }
      const card = document.querySelector(`[data-generation="${id}"]`);
      if (!card) return;
      renderGeneration(card, gen);
      if (TERMINAL.has(gen.status)) {
        if (gen.status !== "completed") await soft(loadAccount); // refunded
        await soft(loadLedger);
        return;
      }
    }
  } finally {
    watching.delete(id);
  }
}

// --- privacy --------------------------------------------------------------------------------

async function requestExport() {
  let exp = await api("POST", "/privacy_export/privacy/exports");
  $("export-link").hidden = true;
  for (let i = 0; i < 120 && !exp.url && !["failed", "expired"].includes(exp.status); i += 1) {
    const progress = exp.rows_total ? ` ${Math.floor((100 * (exp.rows_done || 0)) / exp.rows_total)} %` : "";
    $("export-status").textContent = `export ${exp.id}: ${exp.status}${progress}`;
    await sleep(POLL_MS);
    exp = await api("GET", `/privacy_export/privacy/exports/${exp.id}`);
  }
  $("export-status").textContent = `export ${exp.id}: ${exp.status}${exp.expires_at ? ` (until ${when(exp.expires_at)})` : ""}`;
  if (exp.url) {
    $("export-link").href = exp.url;
    $("export-link").hidden = false;
  }
}

async function requestDeletion() {
  if (!window.confirm("Schedule the deletion of this account? You can cancel it during the grace period.")) return;
  const result = await api("POST", "/privacy_export/privacy/deletion");
  notice(`Account deletion scheduled for ${when(result.scheduled_for)}`);
  await soft(loadAccount);
}

async function cancelDeletion() {
  await api("DELETE", "/privacy_export/privacy/deletion");
  notice("Account deletion canceled");
  await soft(loadAccount);
}

// --- wiring ---------------------------------------------------------------------------------

function returnedFromInvoice() {
  // Plisio sends the buyer back to FRONTEND_URL/purchases/{id}?result=paid|failed
  const match = window.location.pathname.match(/^\/purchases\/([0-9a-f-]{36})$/);
  if (!match) return;
  const result = new URLSearchParams(window.location.search).get("result") || "back";
  notice(`Back from the invoice of purchase ${match[1]}: ${result}`);
  window.history.replaceState(null, "", "/");
}

function wire() {
  const signinButton = document.querySelector('[data-testid="sign-in"]');
  $("signin-form").addEventListener(
    "submit",
    act(signinButton, () => signIn($("email").value.trim())),
  );
  $("sign-out").addEventListener("click", signOut);
  $("refresh").addEventListener("click", act($("refresh"), () => Promise.all([loadAccount(), loadLedger(), loadPurchases()])));
  $("confirm-age").addEventListener(
    "click",
    act($("confirm-age"), async () => {
      await api("POST", "/account/me/age-confirmation", { body: { over_18: true } });
      await loadAccount();
    }),
  );
  $("sim-pay").addEventListener("click", act($("sim-pay"), payInSimulator));
  $("model").addEventListener("change", () => {
    $("mode").value = ""; // each model starts in its own default mode
    renderForm();
    requote();
  });
  $("mode").addEventListener("change", () => {
    renderForm();
    requote();
  });
  for (const name of ["resolution", "ratio", "duration", "audio", "seed", "camera-fixed"]) {
    $(name).addEventListener("change", () => requote());
    $(name).addEventListener("input", () => requote(250));
  }
  $("prompt").addEventListener("input", () => requote(400));
  $("reference-file").addEventListener(
    "change",
    act(null, async () => {
      const file = $("reference-file").files[0];
      if (file) await uploadReference(file);
      $("reference-file").value = "";
      requote();
    }),
  );
  $("generate-button").addEventListener("click", act($("generate-button"), generate));
  $("reload-history").addEventListener("click", act($("reload-history"), () => loadHistory(false)));
  $("more-history").addEventListener("click", act($("more-history"), () => loadHistory(true)));
  $("export").addEventListener("click", act($("export"), requestExport));
  $("delete-account").addEventListener("click", act($("delete-account"), requestDeletion));
  $("cancel-deletion").addEventListener("click", act($("cancel-deletion"), cancelDeletion));
  window.addEventListener("focus", () => {
    if (session) soft(refreshMoney);
  });
}

wire();
returnedFromInvoice();
if (session) act(null, enter)();
