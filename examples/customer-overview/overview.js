// A customer's booking overview, on a web page of its own: it lists the
// customer's bookings through scopegate (another origin, so CORS applies) and
// offers the actions the listing's signed links allow.
//
// What it needs is in the address's fragment, which browsers never send to a
// server:
//   #gate=http://127.0.0.1:8080&signed_search=<token>  a signed-search token (Timekit):
//       GET /v2/bookings?search=<its subject>&include=customer_action_links&signed_search=<token>
//   #gate=http://127.0.0.1:8080&sso-token=<token>      an SSO token (BookingBug):
//       GET /v2/me/bookings?sso-token=<token> once; scopegate answers with a
//       session cookie, and later calls carry only the cookie.
//
// Every value from the address or the API reaches the page as text
// (textContent, attributes), never as markup.
"use strict";

const LABELS = {
  cancel_by_customer: "Cancel",
  reschedule_by_customer: "Reschedule",
};

const $ = (id) => document.getElementById(id);
const table = $("bookings");

class Failure extends Error {}

const params = new URLSearchParams(location.hash.slice(1));
let gate;
let credential;

// The gate's origin; links in a listing are followed only to it.
function gateOrigin() {
  try {
    return new URL(params.get("gate") || "http://127.0.0.1:8080").origin;
  } catch {
    throw new Failure("The address names no valid booking service (gate=...).");
  }
}

// The subject claim of a signed-search token: what its `search` must name.
// Read without verifying: scopegate verifies the token, this only builds the query.
function subjectOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    for (const [field, value] of Object.entries(claims)) {
      if ((field === "customer.email" || field.startsWith("meta.")) && typeof value === "string") {
        return [field, value];
      }
    }
  } catch {
    // Falls through to the error below.
  }
  throw new Failure("The link's token names no customer. Ask for a new link.");
}

// How this page proves the customer: the list URL, and whether the browser
// sends cookies with it.
function credentialFromAddress() {
  const signed = params.get("signed_search");
  if (signed) {
    const [field, value] = subjectOf(signed);
    const query = new URLSearchParams({
      search: `${field}:${value}`,
      include: "customer_action_links",
      signed_search: signed,
    });
    return {
      who: `Bookings of ${value}`,
      list: () => `${gate}/v2/bookings?${query}`,
      cookies: "omit",
      loaded() {},
      expired: "Your link is not valid or has expired. Ask the business for a new one.",
    };
  }
  let sso = params.get("sso-token");
  if (sso || params.get("session") === "sso") {
    return {
      who: "Signed in with your account on the business's website",
      list: () => `${gate}/v2/me/bookings${sso ? `?${new URLSearchParams({ "sso-token": sso })}` : ""}`,
      // The session cookie scopegate sets (HttpOnly; Secure; SameSite=Lax)
      // is stored and sent back only with credentials: "include".
      cookies: "include",
      loaded() {
        if (sso) {
          // The cookie stands in for the token from now on: take the token
          // out of the address (and the history).
          sso = null;
          history.replaceState(null, "", `#${new URLSearchParams({ gate, session: "sso" })}`);
        }
      },
      expired: "You are not signed in, or your session has ended. Sign in again on the business's website.",
    };
  }
  throw new Failure("This page needs the link you were sent: it carries your booking token (#signed_search=... or #sso-token=...).");
}

function explain(status, code) {
  switch (code) {
    case "origin_not_allowed":
      return `The booking service does not accept requests from this page (${location.origin}).`;
    case "unauthorized":
      return credential.expired;
    case "link_already_used":
      return "That action link was already used. The list below is up to date.";
    case "invalid_transition":
      return "That is no longer possible for this booking. The list below is up to date.";
    case "too_many_failures":
      return "Too many failed attempts. Try again in a minute.";
    default:
      return `The booking service could not do this (HTTP ${status}${code ? `, ${code}` : ""}). Try again later.`;
  }
}

// One call to scopegate; the JSON answer, or a Failure to show.
async function call(url, init) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", referrerPolicy: "no-referrer", ...init });
  } catch {
    // A refused CORS check and an unreachable server look the same to a page.
    throw new Failure(
      `This page (${location.origin}) cannot use the booking service at ${gate}: ` +
        "the service refused this page's origin, or it cannot be reached.",
    );
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON; the status says enough.
  }
  if (!response.ok) {
    const code = typeof body?.error?.code === "string" ? body.error.code : "";
    throw new Failure(explain(response.status, code));
  }
  return body;
}

// ------------------------------------------------------------ rendering --

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

// "2030-01-07 09:00 – 10:30" (UTC), or the values as they came.
function when(b) {
  const fmt = (s) => {
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? String(s ?? "") : d.toISOString().slice(0, 16).replace("T", " ");
  };
  const [start, end] = [fmt(b.start), fmt(b.end)];
  return start.slice(0, 10) === end.slice(0, 10) ? `${start} – ${end.slice(11)}` : `${start} – ${end}`;
}

function stateCell(state) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.textContent = String(state ?? "unknown");
  span.className = /^[a-z_]+$/.test(state) ? `state state-${state}` : "state";
  span.dataset.field = "state";
  td.append(span);
  return td;
}

// A link is followed only when it points at the gate.
function onGate(url) {
  try {
    return typeof url === "string" && new URL(url).origin === gate;
  } catch {
    return false;
  }
}

function actionsCell(b) {
  const td = document.createElement("td");
  const links = b.customer_action_links;
  const offered = links && typeof links === "object" ? Object.entries(links).filter(([, url]) => onGate(url)) : [];
  if (offered.length === 0) {
    td.textContent = "None";
    return td;
  }
  for (const [action, url] of offered) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = LABELS[action] ?? action.replace(/_/g, " ");
    button.setAttribute("aria-label", `${button.textContent} booking ${b.id}`);
    button.addEventListener("click", () =>
      action === "reschedule_by_customer" ? askReschedule(td, b, url) : act(b, action, url, "GET"),
    );
    td.append(button);
  }
  return td;
}

function row(b) {
  const tr = document.createElement("tr");
  tr.dataset.bookingId = String(b.id);
  tr.append(cell(String(b.id)), cell(when(b)), cell(String(b.resource ?? "")), stateCell(b.state), actionsCell(b));
  return tr;
}

// A reschedule link takes the new times as a JSON body (POST): a small form.
function askReschedule(td, b, url) {
  if (td.querySelector("form")) return;
  const form = $("reschedule-form").content.firstElementChild.cloneNode(true);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const utc = (v) => (v.length === 16 ? `${v}:00Z` : `${v}Z`);
    act(b, "reschedule_by_customer", url, "POST", {
      start: utc(form.elements.start.value),
      end: utc(form.elements.end.value),
    });
  });
  td.append(form);
  form.elements.start.focus();
}

// ---------------------------------------------------------------- flow --

function busy(on) {
  if (on) document.body.dataset.state = "loading";
  document.querySelector("main").setAttribute("aria-busy", String(on));
  for (const button of document.querySelectorAll("button")) button.disabled = on;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function failureText(e) {
  return e instanceof Failure ? e.message : `Something went wrong: ${e}`;
}

async function load(note = "") {
  busy(true);
  $("error").hidden = true;
  try {
    const body = await call(credential.list(), { credentials: credential.cookies });
    if (!Array.isArray(body?.data)) throw new Failure("The booking service sent an answer this page cannot read.");
    credential.loaded();
    table.tBodies[0].replaceChildren(...body.data.map(row));
    table.hidden = body.data.length === 0;
    const count = body.data.length === 1 ? "1 booking" : `${body.data.length} bookings`;
    $("status").textContent = `${note}${count}, as of ${new Date().toLocaleTimeString()}.`;
    document.body.dataset.state = "ready";
  } catch (e) {
    table.tBodies[0].replaceChildren();
    table.hidden = true;
    $("status").textContent = note;
    showError(failureText(e));
    document.body.dataset.state = "error";
  } finally {
    busy(false);
  }
}

// Follows one signed link (the link is the credential: no cookies), then
// refreshes the list, which brings fresh links.
async function act(b, action, url, method, body) {
  busy(true);
  let note = "";
  let failure = null;
  try {
    const init = { method, credentials: "omit" };
    if (body) {
      init.body = JSON.stringify(body);
      init.headers = { "Content-Type": "application/json" };
    }
    const reply = await call(url, init);
    const state = typeof reply?.data?.state === "string" ? reply.data.state : "updated";
    note = action === "reschedule_by_customer" ? `Booking ${b.id} was moved. ` : `Booking ${b.id} is now ${state}. `;
  } catch (e) {
    failure = e;
  }
  await load(note);
  if (failure) {
    showError(failureText(failure));
    document.body.dataset.state = "error";
  }
}

function start() {
  try {
    gate = gateOrigin();
    credential = credentialFromAddress();
  } catch (e) {
    $("status").textContent = "";
    $("refresh").hidden = true;
    showError(failureText(e));
    document.body.dataset.state = "error";
    return;
  }
  $("who").textContent = credential.who;
  $("refresh").addEventListener("click", () => load());
  load();
}

// A new link opened in this tab changes only the fragment: start over with it.
window.addEventListener("hashchange", () => location.reload());
start();
