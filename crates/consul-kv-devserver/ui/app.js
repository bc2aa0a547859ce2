// The devserver's KV browser. Plain JavaScript, no build step, no outside address: a client of
// the ordinary HTTP API (/v1/kv, /v1/session/list, /v1/catalog/datacenters), like any other.
//
// Safety rules this file keeps: every key, value and server text reaches the page through
// text nodes (never as markup); links are built from encodeURIComponent; the ACL token lives in
// sessionStorage and travels only in the X-Consul-Token header.
"use strict";

(function () {
  const WAIT = "30s"; // blocking-query wait; the page re-asks at once when it returns
  const state = {
    token: sessionStorage.getItem("consul-kv-token") || "",
    datacenters: [],
    view: null, // { abort: AbortController } of the view on screen
    keepStatus: false, // the next navigation keeps the status line (set by the action behind it)
  };

  // ----- small DOM helpers: text only -----

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "onclick" || name === "onchange" || name === "onsubmit") {
        node.addEventListener(name.slice(2), value);
      } else if (name === "className") {
        node.className = value;
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // Shows `message` and keeps it across the navigation the action is about to make.
  function announce(message) {
    setStatus(message, "ok");
    state.keepStatus = true;
  }

  function setStatus(message, kind) {
    const s = document.getElementById("status");
    if (!message) {
      s.hidden = true;
      s.textContent = "";
      return;
    }
    s.hidden = false;
    s.className = kind || "";
    s.textContent = message;
  }

  // ----- routes: #/<dc>/kv/<prefix>, #/<dc>/key/<key>, #/<dc>/sessions[/<id>] -----
  // A key or prefix is one encodeURIComponent component, so "/" inside it is %2F.

  function folderHref(dc, prefix) {
    return "#/" + encodeURIComponent(dc) + "/kv/" + encodeURIComponent(prefix);
  }
  function keyHref(dc, key) {
    return "#/" + encodeURIComponent(dc) + "/key/" + encodeURIComponent(key);
  }
  function sessionsHref(dc, id) {
    return "#/" + encodeURIComponent(dc) + "/sessions" + (id ? "/" + encodeURIComponent(id) : "");
  }

  function parseRoute() {
    const hash = location.hash.replace(/^#\/?/, "");
    const parts = hash.split("/");
    const dc = parts[0] ? safeDecode(parts[0]) : (state.datacenters[0] || "dc1");
    const kind = parts[1] || "kv";
    const rest = safeDecode(parts.slice(2).join("/"));
    if (kind === "key" && rest) return { dc, kind: "key", key: rest };
    if (kind === "sessions") return { dc, kind: "sessions", id: rest };
    return { dc, kind: "kv", prefix: rest };
  }

  function safeDecode(s) {
    try {
      return decodeURIComponent(s);
    } catch (e) {
      return s;
    }
  }

  // ----- the HTTP API -----

  // Consul's Go client escapes a key per path segment; encodeURIComponent per segment does the
  // same job for the server: "?", "#", "%", spaces and unicode arrive byte for byte.
  function kvPath(key) {
    return "/v1/kv/" + key.split("/").map(encodeURIComponent).join("/");
  }

  function query(params) {
    const out = [];
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === false) continue;
      out.push(v === true ? encodeURIComponent(k) : encodeURIComponent(k) + "=" + encodeURIComponent(v));
    }
    return out.length ? "?" + out.join("&") : "";
  }

  class NeedToken extends Error {}

  async function api(method, path, params, options) {
    const headers = {};
    if (state.token) headers["X-Consul-Token"] = state.token;
    const init = { method, headers, cache: "no-store" };
    if (options && options.body !== undefined) init.body = options.body;
    if (options && options.signal) init.signal = options.signal;
    const resp = await fetch(path + query(params), init);
    // A server whose default policy is "deny" answers a tokenless read with an empty,
    // filtered list rather than a 403: ask for a token up front.
    if (!state.token && resp.headers.get("X-Consul-Default-Acl-Policy") === "deny") {
      askForToken("its default ACL policy is deny, and this page has no token");
    }
    if (resp.status === 403) {
      const text = await resp.text();
      throw new NeedToken(text.trim() || "Permission denied");
    }
    return resp;
  }

  async function readJson(resp) {
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  async function failure(resp) {
    const text = (await resp.text()).trim();
    return new Error("The server answered " + resp.status + (text ? ": " + text : ""));
  }

  // A loop of blocking queries that stops when the view goes away. `fetchOnce(index, signal)`
  // returns the response; `render(resp)` draws it.
  async function live(view, liveMark, fetchOnce, render) {
    let index = 0;
    let backoff = 500;
    while (!view.abort.signal.aborted) {
      try {
        const resp = await fetchOnce(index, view.abort.signal);
        const next = Number(resp.headers.get("X-Consul-Index") || "0");
        await render(resp);
        // An index that went backwards (a restarted server) starts over.
        index = next > index ? next : (next < index ? 0 : index);
        backoff = 500;
        liveMark.textContent = "live";
        liveMark.className = "live";
      } catch (e) {
        if (view.abort.signal.aborted) return;
        if (e instanceof NeedToken) {
          askForToken(e.message);
          return;
        }
        liveMark.textContent = "cannot reach the server, retrying";
        liveMark.className = "live down";
        index = 0;
        await sleep(backoff, view.abort.signal);
        backoff = Math.min(backoff * 2, 15000);
      }
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ----- values -----

  function decodeBase64(b64) {
    if (!b64) return new Uint8Array(0);
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  function asText(bytes) {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (e) {
      return null;
    }
  }

  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length; off += 16) {
      const row = bytes.subarray(off, off + 16);
      const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
      const ascii = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
      lines.push(off.toString(16).padStart(8, "0") + "  " + hex.padEnd(47, " ") + "  |" + ascii + "|");
    }
    return lines.join("\n");
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  }

  function fromHex(text) {
    const clean = text.replace(/\s+/g, "");
    if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) return null;
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
    return out;
  }

  // What the value view shows: JSON pretty-printed, other UTF-8 as text, the rest as hex.
  function describe(bytes) {
    const text = asText(bytes);
    if (text === null) return { format: "binary, " + bytes.length + " bytes (hex)", shown: hexDump(bytes), text: null };
    const t = text.trim();
    if (t.startsWith("{") || t.startsWith("[")) {
      try {
        return { format: "JSON", shown: JSON.stringify(JSON.parse(t), null, 2), text };
      } catch (e) {
        // not JSON after all: plain text
      }
    }
    return { format: bytes.length ? "text" : "empty", shown: text, text };
  }

  // ----- shared pieces of the views -----

  function parentOf(path) {
    const trimmed = path.endsWith("/") ? path.slice(0, -1) : path;
    const cut = trimmed.lastIndexOf("/");
    return cut < 0 ? "" : trimmed.slice(0, cut + 1);
  }

  function crumbs(dc, path, isKey) {
    const nav = el("nav", { className: "crumbs", id: "crumbs" }, el("a", { href: folderHref(dc, "") }, "Key/Value"));
    const segments = path.split("/");
    let acc = "";
    segments.forEach((seg, i) => {
      const last = i === segments.length - 1;
      if (last && seg === "") return; // a folder path ends with "/"
      acc += seg + (last && isKey ? "" : "/");
      nav.appendChild(el("span", { className: "sep" }, "/"));
      nav.appendChild(el("a", { href: last && isKey ? keyHref(dc, acc) : folderHref(dc, acc) }, seg));
    });
    return nav;
  }

  function newView() {
    if (state.view) state.view.abort.abort();
    state.view = { abort: new AbortController() };
    return state.view;
  }

  // ----- folder view -----

  function showFolder(dc, prefix) {
    const view = newView();
    const main = clear(document.getElementById("main"));
    const liveMark = el("span", { className: "live", id: "live" }, "loading");
    const list = el("ul", { className: "tree", id: "tree" }, el("li", { className: "empty" }, "loading…"));
    const panel = el("div", { id: "panel" });
    main.append(
      crumbs(dc, prefix, false),
      el("div", { className: "toolbar" },
        el("button", { id: "new-key", type: "button", className: "primary", onclick: () => newKeyForm(dc, prefix, panel) }, "Create key"),
        prefix ? el("button", { id: "delete-folder", type: "button", className: "danger", onclick: () => confirmDeleteFolder(dc, prefix, panel) }, "Delete folder") : null,
        liveMark),
      panel,
      list);
    live(view, liveMark,
      (index, signal) => api("GET", kvPath(prefix), { keys: true, separator: "/", dc, index: index || undefined, wait: index ? WAIT : undefined }, { signal }),
      async (resp) => {
        let keys = [];
        if (resp.status === 200) keys = (await readJson(resp)) || [];
        else if (resp.status !== 404) throw await failure(resp);
        clear(list);
        const shown = keys.filter((k) => k.startsWith(prefix));
        if (shown.length === 0) list.appendChild(el("li", { className: "empty" }, prefix ? "This folder is empty." : "No keys yet."));
        for (const k of shown) {
          const isFolder = k.endsWith("/") && k !== prefix;
          const name = k === prefix ? "(this folder's own key)" : k.slice(prefix.length);
          list.appendChild(el("li", {},
            el("a", { className: isFolder ? "folder" : "key", href: isFolder ? folderHref(dc, k) : keyHref(dc, k), "data-key": k }, name)));
        }
      });
  }

  function newKeyForm(dc, prefix, panel) {
    const name = el("input", { id: "new-key-name", className: "wide", placeholder: "name (a trailing / makes a folder)" });
    const value = el("textarea", { id: "new-key-value", placeholder: "value" });
    clear(panel).appendChild(el("div", { className: "panel" },
      el("p", {}, "New key under ", el("code", {}, prefix || "(root)")),
      name, value,
      el("div", { className: "toolbar" },
        el("button", { id: "create", type: "button", className: "primary", onclick: async () => {
          const key = prefix + name.value;
          if (!name.value) return setStatus("Give the key a name.", "error");
          try {
            // cas=0: create only; never overwrite a key that already exists.
            const resp = await api("PUT", kvPath(key), { cas: 0, dc }, { body: new TextEncoder().encode(value.value) });
            if (!resp.ok) throw await failure(resp);
            const applied = (await resp.text()).trim() === "true";
            if (!applied) return setStatus("A key named " + key + " already exists; it was not overwritten.", "error");
            announce("Created " + key + ".");
            location.hash = key.endsWith("/") ? folderHref(dc, key) : keyHref(dc, key);
          } catch (e) {
            report(e);
          }
        } }, "Create"),
        el("button", { type: "button", onclick: () => clear(panel) }, "Cancel"))));
    name.focus();
  }

  function confirmDeleteFolder(dc, prefix, panel) {
    clear(panel).appendChild(el("div", { className: "confirm", id: "confirm" },
      el("p", {}, "Delete the folder ", el("code", {}, prefix), " and every key under it?"),
      el("div", { className: "toolbar" },
        el("button", { id: "confirm-delete", type: "button", className: "danger", onclick: async () => {
          try {
            const resp = await api("DELETE", kvPath(prefix), { recurse: true, dc });
            if (!resp.ok) throw await failure(resp);
            announce("Deleted " + prefix + ".");
            location.hash = folderHref(dc, parentOf(prefix));
          } catch (e) {
            report(e);
          }
        } }, "Delete"),
        el("button", { type: "button", onclick: () => clear(panel) }, "Cancel"))));
  }

  // ----- value view -----

  function showKey(dc, key) {
    const view = newView();
    const main = clear(document.getElementById("main"));
    const liveMark = el("span", { className: "live", id: "live" }, "loading");
    const body = el("div", { id: "value-view" });
    const panel = el("div", { id: "panel" });
    main.append(crumbs(dc, key, true), el("h1", { id: "key-name" }, key), body, panel);
    const editing = { on: false, entry: null };

    live(view, liveMark,
      (index, signal) => api("GET", kvPath(key), { dc, index: index || undefined, wait: index ? WAIT : undefined }, { signal }),
      async (resp) => {
        if (resp.status === 404) {
          editing.entry = null;
          clear(body).append(el("p", { id: "missing" }, "This key does not exist (it may have been deleted)."),
            el("div", { className: "toolbar" }, liveMark));
          return;
        }
        if (resp.status !== 200) throw await failure(resp);
        const entries = await readJson(resp);
        const entry = entries && entries[0];
        if (!entry) return;
        if (editing.on) {
          // Leave the editor alone; CAS on the index the editor started from decides.
          if (editing.entry && entry.ModifyIndex !== editing.entry.ModifyIndex) {
            const note = document.getElementById("edit-note");
            if (note) {
              note.textContent = "This key changed meanwhile (now at index " + entry.ModifyIndex +
                "); saving will be refused.";
            }
          }
          return;
        }
        editing.entry = entry;
        renderValue(dc, key, entry, body, panel, liveMark, editing);
      });
  }

  function renderValue(dc, key, entry, body, panel, liveMark, editing) {
    const bytes = decodeBase64(entry.Value);
    const d = describe(bytes);
    const session = entry.Session
      ? el("a", { id: "session-link", href: sessionsHref(dc, entry.Session) }, entry.Session)
      : "none";
    clear(body).append(
      el("dl", { className: "meta", id: "meta" },
        el("dt", {}, "Flags"), el("dd", { id: "flags" }, String(entry.Flags)),
        el("dt", {}, "Create index"), el("dd", {}, String(entry.CreateIndex)),
        el("dt", {}, "Modify index"), el("dd", { id: "modify-index" }, String(entry.ModifyIndex)),
        el("dt", {}, "Lock index"), el("dd", {}, String(entry.LockIndex)),
        el("dt", {}, "Session"), el("dd", { id: "session" }, session)),
      el("p", { className: "format", id: "format" }, d.format),
      el("pre", { className: "value", id: "value" }, d.shown),
      el("div", { className: "toolbar" },
        el("button", { id: "edit", type: "button", className: "primary", onclick: () => editValue(dc, key, entry, body, panel, liveMark, editing) }, "Edit"),
        el("button", { id: "delete-key", type: "button", className: "danger", onclick: () => confirmDeleteKey(dc, key, entry, panel) }, "Delete"),
        liveMark));
  }

  function editValue(dc, key, entry, body, panel, liveMark, editing) {
    const bytes = decodeBase64(entry.Value);
    const text = asText(bytes);
    const hex = text === null;
    editing.on = true;
    editing.entry = entry;
    const area = el("textarea", { id: "editor", spellcheck: "false" });
    area.value = hex ? toHex(bytes) : text;
    const stop = () => {
      editing.on = false;
      renderValue(dc, key, editing.entry, body, panel, liveMark, editing);
    };
    clear(body).append(
      el("p", { className: "hint" }, hex
        ? "Binary value: edit it as hexadecimal bytes."
        : "Editing the value as text. Saving is a check-and-set on modify index " + entry.ModifyIndex + ": if anyone writes the key first, nothing is overwritten."),
      el("p", { className: "hint", id: "edit-note" }),
      area,
      el("div", { className: "toolbar" },
        el("button", { id: "save", type: "button", className: "primary", onclick: async () => {
          const newBytes = hex ? fromHex(area.value) : new TextEncoder().encode(area.value);
          if (newBytes === null) return setStatus("That is not a sequence of hexadecimal bytes.", "error");
          try {
            const resp = await api("PUT", kvPath(key), { cas: entry.ModifyIndex, flags: entry.Flags, dc }, { body: newBytes });
            if (!resp.ok) throw await failure(resp);
            const applied = (await resp.text()).trim() === "true";
            if (!applied) {
              setStatus("Not saved: " + key + " was changed by someone else after you opened it (you started from index " +
                entry.ModifyIndex + "). Your text is still in the editor; reload the value to compare.", "error");
              return;
            }
            announce("Saved " + key + ".");
            // Start the view again: it reads the new value and index and resumes watching.
            route();
          } catch (e) {
            report(e);
          }
        } }, "Save"),
        el("button", { id: "cancel", type: "button", onclick: () => { setStatus(""); stop(); } }, "Cancel"),
        el("button", { id: "reload", type: "button", onclick: () => { setStatus(""); route(); } }, "Reload value"),
        liveMark));
    area.focus();
  }

  function confirmDeleteKey(dc, key, entry, panel) {
    clear(panel).appendChild(el("div", { className: "confirm", id: "confirm" },
      el("p", {}, "Delete the key ", el("code", {}, key), "?"),
      el("div", { className: "toolbar" },
        el("button", { id: "confirm-delete", type: "button", className: "danger", onclick: async () => {
          try {
            const resp = await api("DELETE", kvPath(key), { cas: entry.ModifyIndex, dc });
            if (!resp.ok) throw await failure(resp);
            if ((await resp.text()).trim() !== "true") {
              return setStatus("Not deleted: " + key + " changed after you opened it.", "error");
            }
            announce("Deleted " + key + ".");
            location.hash = folderHref(dc, parentOf(key));
          } catch (e) {
            report(e);
          }
        } }, "Delete"),
        el("button", { type: "button", onclick: () => clear(panel) }, "Cancel"))));
  }

  // ----- sessions -----

  function seconds(ns) {
    return typeof ns === "number" ? (ns / 1e9) + "s" : String(ns || "");
  }

  function showSessions(dc, highlight) {
    const view = newView();
    const main = clear(document.getElementById("main"));
    const liveMark = el("span", { className: "live", id: "live" }, "loading");
    const tbody = el("tbody", { id: "sessions" });
    main.append(el("h1", {}, "Sessions"), el("div", { className: "toolbar" }, liveMark),
      el("table", {}, el("thead", {}, el("tr", {},
        ["ID", "Name", "Node", "Behavior", "TTL", "Lock delay", "Create index"].map((h) => el("th", {}, h)))), tbody));
    live(view, liveMark,
      (index, signal) => api("GET", "/v1/session/list", { dc, index: index || undefined, wait: index ? WAIT : undefined }, { signal }),
      async (resp) => {
        if (resp.status !== 200) throw await failure(resp);
        const sessions = (await readJson(resp)) || [];
        clear(tbody);
        if (sessions.length === 0) tbody.appendChild(el("tr", {}, el("td", { colspan: 7 }, "No sessions.")));
        for (const s of sessions) {
          tbody.appendChild(el("tr", { className: s.ID === highlight ? "highlight" : "", "data-session": s.ID },
            el("td", {}, s.ID), el("td", {}, s.Name || ""), el("td", {}, s.Node || ""), el("td", {}, s.Behavior || ""),
            el("td", {}, s.TTL || ""), el("td", {}, seconds(s.LockDelay)), el("td", {}, String(s.CreateIndex))));
        }
      });
  }

  // ----- token, datacenters, routing -----

  function askForToken(reason) {
    const form = document.getElementById("token-form");
    document.getElementById("token-reason").textContent =
      "This server needs an ACL token (" + reason + "). Enter one to see and change its keys.";
    form.hidden = false;
    document.getElementById("token-input").focus();
  }

  function report(e) {
    if (e instanceof NeedToken) askForToken(e.message);
    else setStatus(String(e.message || e), "error");
  }

  async function loadDatacenters() {
    const select = document.getElementById("dc");
    try {
      const resp = await api("GET", "/v1/catalog/datacenters", {});
      if (resp.ok) state.datacenters = (await readJson(resp)) || [];
    } catch (e) {
      // The list is a convenience; the page still works on the route's datacenter.
    }
    if (state.datacenters.length === 0) state.datacenters = ["dc1"];
    clear(select);
    for (const dc of state.datacenters) select.appendChild(el("option", { value: dc }, dc));
  }

  function route() {
    if (!state.keepStatus) setStatus("");
    state.keepStatus = false;
    const r = parseRoute();
    const select = document.getElementById("dc");
    if (!Array.from(select.options).some((o) => o.value === r.dc)) select.appendChild(el("option", { value: r.dc }, r.dc));
    select.value = r.dc;
    document.getElementById("nav-kv").href = folderHref(r.dc, "");
    document.getElementById("nav-sessions").href = sessionsHref(r.dc, "");
    document.getElementById("nav-kv").className = r.kind === "sessions" ? "" : "active";
    document.getElementById("nav-sessions").className = r.kind === "sessions" ? "active" : "";
    if (r.kind === "key") showKey(r.dc, r.key);
    else if (r.kind === "sessions") showSessions(r.dc, r.id);
    else showFolder(r.dc, r.prefix);
  }

  async function start() {
    document.getElementById("dc").addEventListener("change", (e) => {
      setStatus("");
      location.hash = folderHref(e.target.value, "");
    });
    document.getElementById("token-button").addEventListener("click", () => askForToken("token settings"));
    document.getElementById("token-save").addEventListener("click", () => {
      state.token = document.getElementById("token-input").value.trim();
      sessionStorage.setItem("consul-kv-token", state.token);
      document.getElementById("token-input").value = "";
      document.getElementById("token-form").hidden = true;
      loadDatacenters().then(route);
    });
    document.getElementById("token-clear").addEventListener("click", () => {
      state.token = "";
      sessionStorage.removeItem("consul-kv-token");
      document.getElementById("token-form").hidden = true;
      route();
    });
    window.addEventListener("hashchange", () => {
      route();
    });
    await loadDatacenters();
    if (!location.hash) location.replace(folderHref(state.datacenters[0], ""));
    route();
  }

  start();
})();
