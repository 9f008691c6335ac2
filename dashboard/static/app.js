// The fleet map: signs in, follows the fleet live over Server-Sent Events, or replays a past
// window given in the URL (?from=…&to=…&speed=…) so a replay can be shared as a link.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  session: null,
  fleet: null,
  clockOffset: 0,      // server clock minus ours, so ages use the server's time
  drones: new Map(),   // drone_id -> latest record
  alerts: [],
  selected: null,
  events: null,
  replay: null,
  grid: null,          // the coordinate grid, while no base map shows
  attribution: null,   // the base map's credit, shown only while its tiles do
};

// ---- map ------------------------------------------------------------------------------------
const map = L.map("map", { worldCopyJump: true, maxZoom: 19 }).setView([47.3769, 8.5417], 12);
setupBaseMap(config.baseLayer);
const cluster = L.markerClusterGroup({
  maxClusterRadius: 40,
  disableClusteringAtZoom: 15,
  spiderfyOnMaxZoom: false,
  showCoverageOnHover: false,
  chunkedLoading: true,
  // A cluster shows its size and, by its ring, the lowest battery inside it.
  iconCreateFunction: (group) => {
    const children = group.getAllChildMarkers();
    const rank = { ok: 0, warn: 1, crit: 2 };
    const worst = children.reduce((w, m) => (rank[m.batteryClass] > rank[w] ? m.batteryClass : w), "ok");
    return L.divIcon({
      html: `<div><span>${children.length}</span></div>`,
      className: `marker-cluster drone-cluster ${worst}`,
      iconSize: [40, 40],
    });
  },
});
let clustersDirty = false;
map.addLayer(cluster);
document.body.dataset.renderer = "dom";
const markers = new Map();  // drone_id -> L.Marker
let trail = null;
let fitted = false;

// Colours turn where the stream worker raises battery alerts (at or below), from the settings.
function batteryClass(pct) {
  if (pct <= config.batteryCriticalPct) return "crit";
  if (pct <= config.batteryLowPct) return "warn";
  return "ok";
}

function serverNow() { return Date.now() + state.clockOffset; }

function ageClass(ageMs) {
  if (ageMs >= config.lostAfterMs) return "lost";
  if (ageMs >= config.staleAfterMs) return "stale";
  return "";
}

function iconKey(drone, age) {
  return `${batteryClass(drone.battery_pct)}|${age}|${Math.round(drone.heading_deg / 5) * 5}|${drone.drone_id === state.selected}`;
}

function icon(drone, age) {
  const heading = Math.round(drone.heading_deg / 5) * 5;
  const classes = ["drone", batteryClass(drone.battery_pct), age, drone.drone_id === state.selected ? "selected" : ""].join(" ");
  const html = `<div class="${classes}" data-drone-id="${escapeHtml(drone.drone_id)}">
    <svg viewBox="-18 -18 36 36" style="transform: rotate(${heading}deg)">
      <path class="arrow" d="M0 -17.5 L7 -8 L-7 -8 Z"/><circle r="8.5"/></svg></div>`;
  return L.divIcon({ html, className: "drone-marker", iconSize: [36, 36], iconAnchor: [18, 18] });
}

// A large fleet is drawn on one canvas (Leaflet's canvas renderer: a disc per drone, in its
// battery colour, ringed when selected) instead of one DOM element per drone with clustering:
// measured with bench/map.py, 5,000 clustered DOM markers took seconds per live update.
const CANVAS_ABOVE = 1000;
const canvasRenderer = L.canvas({ padding: 0.3, tolerance: 4 });
const canvasLayer = L.layerGroup();
const COLOURS = { ok: "#2e9d5b", warn: "#f49d37", crit: "#d7263d", stale: "#9aa3ae" };

function canvasStyle(drone, age) {
  const selected = drone.drone_id === state.selected;
  return {
    // Unselected discs have no outline: one fill per drone per frame instead of two strokes.
    renderer: canvasRenderer, radius: selected ? 8 : 5, stroke: selected, weight: 3, color: "#1d2330",
    fillColor: COLOURS[age === "stale" ? "stale" : batteryClass(drone.battery_pct)], fillOpacity: 0.95,
  };
}

// Switching between canvas and DOM markers starts the markers afresh.
function chooseRenderer() {
  const canvas = state.drones.size > CANVAS_ABOVE;
  if (canvas === map.hasLayer(canvasLayer) && (canvas || map.hasLayer(cluster))) return;
  cluster.clearLayers(); canvasLayer.clearLayers(); markers.clear();
  if (canvas) { map.removeLayer(cluster); canvasLayer.addTo(map); } else { map.removeLayer(canvasLayer); cluster.addTo(map); }
  document.body.dataset.renderer = canvas ? "canvas" : "dom";
}

// DOM markers are added to and moved in the cluster group in bulk (one pass over its tree per
// update, not one per drone); an icon or style is rebuilt only when its look changed.
function placeDrone(drone, ageMs, batch) {
  const age = ageClass(ageMs);
  let marker = markers.get(drone.drone_id);
  if (age === "lost") {
    if (marker) { batch.gone.push(marker); markers.delete(drone.drone_id); }
    return;
  }
  const key = iconKey(drone, age);
  const battery = batteryClass(drone.battery_pct);
  if (marker && marker.batteryClass !== battery) clustersDirty = true;
  if (batch.canvas) {
    if (!marker) {
      marker = L.circleMarker([drone.lat, drone.lon], canvasStyle(drone, age));
      marker.on("click", () => select(drone.drone_id));
      markers.set(drone.drone_id, marker);
      if ($("drone-labels").checked) marker.bindTooltip(drone.drone_id, { permanent: true, direction: "right", offset: [8, 0], className: "drone-label" });
      batch.added.push(marker);
    } else {
      const ll = marker.getLatLng();
      if (ll.lat !== drone.lat || ll.lng !== drone.lon) marker.setLatLng([drone.lat, drone.lon]);
      if (marker.iconKey !== key) { const st = canvasStyle(drone, age); marker.setStyle(st); marker.setRadius(st.radius); }
    }
    marker.iconKey = key;
    marker.batteryClass = battery;
    return;
  }
  if (!marker) {
    marker = L.marker([drone.lat, drone.lon], { icon: icon(drone, age), keyboard: false, title: drone.drone_id });
    marker.iconKey = key;
    marker.on("click", () => select(drone.drone_id));
    markers.set(drone.drone_id, marker);
    if ($("drone-labels").checked) marker.bindTooltip(drone.drone_id, { permanent: true, direction: "right", offset: [14, 0], className: "drone-label" });
    batch.added.push(marker);
  } else {
    const ll = marker.getLatLng();
    if (ll.lat !== drone.lat || ll.lng !== drone.lon) batch.moved.push([marker, drone.lat, drone.lon]);
    if (marker.iconKey !== key) { marker.setIcon(icon(drone, age)); marker.iconKey = key; }
  }
  marker.batteryClass = battery;
}

function applyBatch(batch) {
  if (batch.canvas) {
    for (const m of batch.gone) canvasLayer.removeLayer(m);
    for (const m of batch.added) canvasLayer.addLayer(m);
    return;
  }
  if (batch.moved.length) {
    const moved = batch.moved.map(([m]) => m);
    cluster.removeLayers(moved);
    for (const [m, lat, lon] of batch.moved) m.setLatLng([lat, lon]);
    batch.added.push(...moved);
  }
  if (batch.gone.length) cluster.removeLayers(batch.gone);
  if (batch.added.length) cluster.addLayers(batch.added);
}

function renderDrones() {
  const now = state.replay ? state.replay.clock : serverNow();
  const seen = new Set();
  chooseRenderer();
  const batch = { added: [], moved: [], gone: [], canvas: map.hasLayer(canvasLayer) };
  let reporting = 0, stale = 0;
  for (const drone of state.drones.values()) {
    const age = now - drone.ts;
    placeDrone(drone, age, batch);
    seen.add(drone.drone_id);
    if (age < config.staleAfterMs) reporting++;
    else if (age < config.lostAfterMs) stale++;
  }
  for (const [id, marker] of markers) {
    if (!seen.has(id)) { batch.gone.push(marker); markers.delete(id); }
  }
  applyBatch(batch);
  if (clustersDirty) { cluster.refreshClusters(); clustersDirty = false; }
  const shown = markers.size;
  $("summary").textContent = `${shown} on map · ${reporting} reporting · ${stale} silent`;
  document.body.dataset.markers = String(shown);
  if (!fitted && shown) {
    map.fitBounds(L.latLngBounds([...markers.values()].map((m) => m.getLatLng())).pad(0.2), { maxZoom: 14 });
    fitted = true;
  }
  if (state.selected) {
    const drone = state.drones.get(state.selected);
    if (drone) { showPanel(drone, now); extendTrail(drone); }
  }
  renderList(now);
}

// ---- drone list -------------------------------------------------------------------------------
// Search by id, sort, filter; a click centres the map on the drone and opens its panel. At most
// LIST_ROWS rows are drawn: a large fleet is narrowed by the search, not scrolled through.
const LIST_ROWS = 100;
const collator = new Intl.Collator(undefined, { numeric: true });  // "d-9" before "d-10"
const SORTS = {
  id: (a, b) => collator.compare(a.drone_id, b.drone_id),
  battery: (a, b) => a.battery_pct - b.battery_pct,
  report: (a, b) => b.ts - a.ts,
  altitude: (a, b) => b.alt_m - a.alt_m,
  speed: (a, b) => b.speed_mps - a.speed_mps,
};

function listFilter(now) {
  const filter = $("drone-filter").value;
  if (filter === "alert") {
    const at = state.replay ? state.replay.clock : Infinity;
    const alerting = new Set(state.alerts.filter((a) => a.raised_at <= at && alertState(a, at) === "active").map((a) => a.drone_id));
    return (d) => alerting.has(d.drone_id);
  }
  if (filter === "silent") return (d) => now - d.ts >= config.staleAfterMs;
  if (filter === "low") return (d) => d.battery_pct <= config.batteryLowPct;
  return () => true;
}

// Redrawn at most once a second (and on the operator's input): a live update of a large fleet
// must not pay for rebuilding the list every time.
let listDrawnAt = 0, listDrawnSize = -1;
function renderList(now, force = false) {
  const at = performance.now();
  if (state.drones.size !== listDrawnSize) force = true;  // drones came or went: at once
  if (!force && (at - listDrawnAt < 1000 || $("side").classList.contains("collapsed"))) return;
  listDrawnAt = at;
  listDrawnSize = state.drones.size;
  const list = $("drone-list");
  if (!state.drones.size) {
    list.replaceChildren(emptyFleet());
    $("drones-title").textContent = "Drones";
    return;
  }
  const needle = $("drone-search").value.trim().toLowerCase();
  const keep = listFilter(now);
  const rows = [...state.drones.values()]
    .filter((d) => (!needle || d.drone_id.toLowerCase().includes(needle)) && keep(d))
    .sort(SORTS[$("drone-sort").value] || SORTS.id);
  $("drones-title").textContent = `Drones (${rows.length} of ${state.drones.size})`;
  if (!rows.length) { list.replaceChildren(el("li", "No drone matches.", "empty")); return; }
  const items = rows.slice(0, LIST_ROWS).map((d) => {
    const age = now - d.ts;
    const li = el("li", "", `drone-row ${batteryClass(d.battery_pct)} ${age >= config.staleAfterMs ? "stale" : ""}`);
    li.dataset.droneId = d.drone_id;
    if (d.drone_id === state.selected) li.classList.add("selected");
    const button = el("button", "", "drone-pick");
    button.type = "button";
    button.append(
      el("strong", d.drone_id),
      el("span", `${d.battery_pct.toFixed(0)} %`, "battery"),
      el("span", `${d.alt_m.toFixed(0)} m`),
      el("span", `${d.speed_mps.toFixed(1)} m/s`),
      el("span", formatAge(Math.max(0, age)), "age"),
    );
    button.addEventListener("click", () => select(d.drone_id, true));
    li.append(button);
    return li;
  });
  if (rows.length > LIST_ROWS) items.push(el("li", `… and ${rows.length - LIST_ROWS} more: search to narrow.`, "empty"));
  list.replaceChildren(...items);
}

// What an empty fleet means and how its first drone appears.
function emptyFleet() {
  const li = el("li", "", "empty");
  if (state.replay) { li.textContent = "No drone reported in this window."; return li; }
  li.append(
    el("p", `No drone has reported to fleet “${state.fleet || ""}” yet.`),
    el("p", "A drone appears here with its first report: POST it to the ingest service's /v1/telemetry with the fleet's token (dronetrack token create FLEET), or fly a simulated fleet with dronetrack simulate. See docs/ingest.md."),
  );
  return li;
}

// ---- phones and tablets ---------------------------------------------------------------------
// Below 820 px the side panel is a sheet under the map that collapses to its handle; the map
// takes the room it leaves (Leaflet is told its size changed).
function setSheet(open) {
  const was = !$("side").classList.contains("collapsed");
  $("side").classList.toggle("collapsed", !open);
  if (open && !was) renderList(state.replay ? state.replay.clock : serverNow(), true);
  $("sheet-toggle").setAttribute("aria-expanded", String(open));
  $("sheet-toggle").textContent = open ? "Hide panel" : "Show drones, alerts and fleet";
}

function openSheet() { setSheet(true); }

function toggleLabels() {
  const on = $("drone-labels").checked;
  for (const [id, marker] of markers) {
    if (on && !marker.getTooltip()) marker.bindTooltip(id, { permanent: true, direction: "right", offset: [14, 0], className: "drone-label" });
    else if (!on && marker.getTooltip()) marker.unbindTooltip();
  }
}

// ---- base map -------------------------------------------------------------------------------
// Tiles from the local tile set or a tile server. When none is set, or none of the tiles in view
// loads (no internet, outside the tile set), the map says so and draws a labelled coordinate
// grid; the scale bar is always there, so positions and distances still mean something.
function setupBaseMap(base) {
  L.control.scale({ imperial: false }).addTo(map);
  if (!base) {
    showGrid("No base map is configured (DRONETRACK_DASHBOARD_TILES_MBTILES or _TILE_URL).");
    return;
  }
  const { url, ...options } = base;
  const layer = L.tileLayer(url, { maxZoom: 19, ...options, attribution: "" }).addTo(map);
  const judge = () => {
    const tiles = layer.getContainer() ? layer.getContainer().querySelectorAll("img") : [];
    const loaded = [...tiles].filter((t) => t.classList.contains("leaflet-tile-loaded") && t.naturalWidth > 0);
    if (loaded.length) hideGrid(options.attribution);
    else showGrid(url.startsWith("/")
      ? "No base map here: the local tile set does not cover this area or zoom."
      : "Base map unavailable: tiles could not be loaded (no internet?).");
  };
  layer.on("load", judge);
  map.on("moveend", () => { if (!layer.isLoading()) judge(); });
}

function showGrid(reason) {
  const notice = $("basemap-notice");
  notice.textContent = `${reason} Coordinate grid shown.`;
  notice.hidden = false;
  $("map").classList.add("no-base-map");
  if (!state.grid && window.AutoGraticule) state.grid = new window.AutoGraticule({ minDistance: 110 }).addTo(map);
  if (state.attribution) { map.attributionControl.removeAttribution(state.attribution); state.attribution = null; }
}

function hideGrid(attribution) {
  $("basemap-notice").hidden = true;
  $("map").classList.remove("no-base-map");
  if (state.grid) { map.removeLayer(state.grid); state.grid = null; }
  if (attribution && state.attribution !== attribution) {
    map.attributionControl.addAttribution(attribution);
    state.attribution = attribution;
  }
}

// ---- selected drone -------------------------------------------------------------------------
function describe(drone, now) {
  const age = Math.max(0, now - drone.ts);
  return [
    ["battery", `${drone.battery_pct.toFixed(0)} %`],
    ["altitude", `${drone.alt_m.toFixed(0)} m`],
    ["speed", `${drone.speed_mps.toFixed(1)} m/s`],
    ["heading", `${drone.heading_deg.toFixed(0)}°`],
    ["position", `${drone.lat.toFixed(5)}, ${drone.lon.toFixed(5)}`],
    ["status", drone.status || "—"],
    ["last report", `${new Date(drone.ts).toLocaleTimeString()} (${formatAge(age)} ago)`],
  ];
}

function showPanel(drone, now) {
  $("panel").hidden = false;
  $("panel").dataset.droneId = drone.drone_id;
  $("panel-title").textContent = drone.drone_id;
  $("panel-state").replaceChildren(...describe(drone, now).flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
}

async function select(droneId, reveal = false) {
  const previous = state.selected;
  // From a list, the drone may sit in a cluster or off screen: centre on it, zoomed in past
  // clustering (zoom 15) so its own marker shows.
  if (reveal && markers.has(droneId)) map.setView(markers.get(droneId).getLatLng(), Math.max(map.getZoom(), 15));
  state.selected = droneId;
  for (const id of [previous, droneId]) {
    const marker = id && markers.get(id);
    if (marker) marker.iconKey = null;  // redrawn (with or without the highlight) below
  }
  renderDrones();
  openSheet();
  if (state.replay) { drawReplayTrail(); return; }
  const [track, alerts] = await Promise.all([
    api(`/api/drones/${encodeURIComponent(droneId)}/track?limit=2000&since=${serverNow() - 30 * 60 * 1000}`),
    api(`/api/drones/${encodeURIComponent(droneId)}/alerts?limit=20`),
  ]);
  if (state.selected !== droneId || !track) return;
  state.track = track.points.slice().reverse();  // oldest first
  drawTrail(state.track);
  drawBattery(state.track);
  renderAlertList($("panel-alerts"), alerts ? alerts.alerts : [], false);
}

function closePanel() {
  state.selected = null;
  $("panel").hidden = true;
  if (trail) { map.removeLayer(trail); trail = null; }
  renderDrones();
}

function drawTrail(points) {
  const latlngs = points.map((p) => [p.lat, p.lon]);
  if (trail) trail.setLatLngs(latlngs);
  else trail = L.polyline(latlngs, { color: "#3a6ea5", weight: 3, opacity: 0.75, className: "trail" }).addTo(map);
}

function extendTrail(drone) {
  if (state.replay || !state.track) return;
  const last = state.track[state.track.length - 1];
  if (last && last.ts >= drone.ts) return;
  state.track.push(drone);
  drawTrail(state.track);
  drawBattery(state.track);
}

function drawBattery(points) {
  drawLineChart($("battery-chart"), points.map((p) => [p.ts, p.battery_pct]), { colour: "#2e9d5b" });
}

// ---- alerts -----------------------------------------------------------------------------------
function alertState(alert, at) {
  if (alert.cleared_at != null && alert.cleared_at <= at) return "cleared";
  if (alert.acknowledged_at != null && alert.acknowledged_at <= at) return "acknowledged";
  return "active";
}

function renderAlertList(list, alerts, withActions) {
  const at = state.replay ? state.replay.clock : Infinity;
  const filter = withActions ? $("alert-filter").value : "";
  const shown = alerts.filter((a) => a.raised_at <= at && (!filter || alertState(a, at) === filter));
  if (!shown.length) { list.replaceChildren(el("li", "No alerts", "empty")); return; }
  list.replaceChildren(...shown.slice(0, 100).map((alert) => {
    const st = alertState(alert, at);
    const li = el("li", "", `alert ${alert.severity} ${st}`);
    li.dataset.alertId = alert.alert_id;
    const head = el("div", "", "alert-head");
    head.append(el("span", alert.severity, `badge ${alert.severity}`), el("strong", alert.type.replace(/_/g, " ")));
    const drone = el("a", alert.drone_id, "drone-link");
    drone.href = "#"; drone.addEventListener("click", (e) => { e.preventDefault(); select(alert.drone_id, true); });
    const meta = el("div", "", "alert-meta");
    meta.append(drone, el("span", ` · ${new Date(alert.raised_at).toLocaleTimeString()} · `), el("span", st, `state ${st}`));
    li.append(head, meta);
    if (alert.detail) li.append(el("div", alert.detail, "alert-detail"));
    if (withActions && st === "active" && !state.replay) {
      const ack = el("button", "Acknowledge", "ack");
      ack.type = "button";
      ack.addEventListener("click", () => acknowledge(alert.alert_id, ack));
      li.append(ack);
    }
    return li;
  }));
}

function renderAlerts() {
  renderAlertList($("alerts"), state.alerts, true);
  const active = state.alerts.filter((a) => alertState(a, state.replay ? state.replay.clock : Infinity) === "active").length;
  $("alerts-title").textContent = active ? `Alerts (${active} active)` : "Alerts";
}

async function acknowledge(alertId, button) {
  button.disabled = true;
  const updated = await api(`/api/alerts/${encodeURIComponent(alertId)}/ack`, { method: "POST" });
  if (!updated) { button.disabled = false; return; }
  state.alerts = state.alerts.map((a) => (a.alert_id === alertId ? updated : a));
  renderAlerts();
}

// ---- fleet statistics ---------------------------------------------------------------------
async function refreshStats() {
  if (state.replay || !state.session) return;
  const stats = await api("/api/stats");
  if (!stats) return;
  const c = stats.current;
  const tiles = [
    ["drones", c.drones], ["reporting", c.reporting], ["in flight", c.in_flight],
    ["silent", c.stale + c.lost], ["mean battery", c.battery_mean == null ? "—" : `${c.battery_mean} %`],
    ["active alerts", c.alerts_active],
  ];
  $("stats-now").replaceChildren(...tiles.map(([k, v]) => {
    const div = el("div", "", "tile"); div.append(el("dd", String(v)), el("dt", k)); return div;
  }));
  drawLineChart($("stats-chart"), stats.minutes.map((m) => [m.minute, m.battery_mean]), { colour: "#3a6ea5" });
}

// ---- live updates ---------------------------------------------------------------------------
function setLive(text, mode) { $("live").textContent = text; $("live").className = `live live-${mode}`; }

function connect() {
  if (state.events) state.events.close();
  const es = new EventSource(`/api/events?fleet=${encodeURIComponent(state.fleet)}`);
  state.events = es;
  es.onopen = () => setLive("live", "on");
  es.addEventListener("drones", (e) => {  // the whole fleet
    const data = JSON.parse(e.data);
    state.clockOffset = data.now - Date.now();
    state.drones = new Map(data.drones.map((d) => [d.drone_id, d]));
    if (!state.replay) renderDrones();
  });
  es.addEventListener("drones-delta", (e) => {  // only the drones that reported since
    const data = JSON.parse(e.data);
    state.clockOffset = data.now - Date.now();
    for (const d of data.drones) state.drones.set(d.drone_id, d);
    if (!state.replay) renderDrones();
  });
  es.addEventListener("alerts", (e) => {
    state.alerts = JSON.parse(e.data).alerts;
    if (state.replay) return;
    renderAlerts();
    refreshStats();  // its alert count should agree with the list
    if (state.selected) {
      const mine = state.alerts.filter((a) => a.drone_id === state.selected);
      if (mine.length) renderAlertList($("panel-alerts"), mine, false);
    }
  });
  es.onerror = () => {
    setLive("reconnecting…", "off");
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (e.g. the session ended): check, then try again.
      setTimeout(async () => { if (await checkSession()) connect(); }, 3000);
    }
  };
}

// ---- replay -----------------------------------------------------------------------------------
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function showReplayForm(from, to, speed) {
  $("replay").hidden = false;
  $("replay-from").value = toLocalInput(from);
  $("replay-to").value = toLocalInput(to);
  $("replay-speed").value = String(speed);
}

// A window is fetched in slices as compact columns (/api/replay/columns): playing starts with
// the first slice that holds data, the rest arrives while it plays.
// The first slice is short, so a large fleet starts playing within a couple of seconds.
const REPLAY_SLICE_MS = 2 * 60 * 1000;
const REPLAY_FIRST_SLICE_MS = 15 * 1000;

function decodeFlight(f, scales) {
  const n = f.ts.length, points = new Array(n);
  const acc = { ts: 0, lat: 0, lon: 0, alt_m: 0, speed_mps: 0, heading_deg: 0, battery_pct: 0 };
  for (let i = 0; i < n; i++) {
    const p = {};
    for (const k in acc) { acc[k] += f[k][i]; p[k] = k === "ts" ? acc[k] : acc[k] / scales[k]; }
    points[i] = p;
  }
  return points;
}

async function startReplay(from, to, speed) {
  const query = new URLSearchParams({ fleet: state.fleet, from: new Date(from).toISOString(), to: new Date(to).toISOString(), speed: String(speed) });
  history.replaceState(null, "", `?${query}`);
  if (state.events) { state.events.close(); state.events = null; }
  setLive("replay", "replay");
  const r = { from, to, speed, clock: from, loadedUntil: from, flights: new Map(), alerts: [], playing: false, started: false, last: performance.now() };
  state.replay = r;
  state.alerts = r.alerts;
  fitted = false;
  $("stats-title").textContent = "Fleet now";
  $("replay-play").disabled = true;
  $("replay-pause").disabled = true;
  const note = $("replay-note");
  note.hidden = false;
  note.textContent = "Loading…";
  if (!state.replayTicking) { state.replayTicking = true; requestAnimationFrame(replayTick); }
  for (let since = from, until; since < to; since = until) {
    until = Math.min(to, since + (since === from ? REPLAY_FIRST_SLICE_MS : REPLAY_SLICE_MS));
    const data = await api(`/api/replay/columns?since=${since}&until=${until}`);
    if (state.replay !== r) return;  // another window, or back to live
    if (!data) { note.textContent = "The replay could not be loaded."; return; }
    for (const f of data.drones) {
      const points = decodeFlight(f, data.scales);
      const had = r.flights.get(f.drone_id);
      r.flights.set(f.drone_id, had ? had.concat(points) : points);
    }
    r.alerts.push(...data.alerts);
    r.loadedUntil = until;
    if (!r.started && r.flights.size) beginReplay(r);
  }
  if (!r.started) {
    note.textContent = `No drone reported between ${new Date(from).toLocaleString()} and ${new Date(to).toLocaleString()}: choose another window.`;
    $("replay-play").disabled = false;
  }
}

// Open at the first data in the window, and say so when that is later than its start.
function beginReplay(r) {
  const first = Math.min(...[...r.flights.values()].map((p) => p[0].ts));
  r.started = true;
  r.clock = Math.max(r.from, first);
  r.playing = true;
  r.last = performance.now();
  const note = $("replay-note");
  note.hidden = first - r.from < 1000;
  note.textContent = `The first data in this window is at ${new Date(first).toLocaleString()}: playing from there.`;
  $("replay-play").disabled = true;
  $("replay-pause").disabled = false;
}

function replayPositions(clock) {
  const drones = new Map();
  for (const [id, points] of state.replay.flights) {
    let lo = 0, hi = points.length - 1, found = -1;
    while (lo <= hi) {  // the last point at or before the clock
      const mid = (lo + hi) >> 1;
      if (points[mid].ts <= clock) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found >= 0) drones.set(id, { drone_id: id, ...points[found] });
  }
  return drones;
}

function replayTick(now) {
  const r = state.replay;
  if (!r) { state.replayTicking = false; return; }
  if (r.playing) {
    // Not past what has arrived: a slow link pauses the clock rather than showing gaps.
    r.clock = Math.min(r.to, r.loadedUntil, r.clock + (now - r.last) * r.speed);
    if (r.clock >= r.to) { r.playing = false; $("replay-play").disabled = false; $("replay-pause").disabled = true; }
  }
  r.last = now;
  state.drones = replayPositions(r.clock);
  renderDrones();
  renderAlerts();
  $("replay-seek").value = String(Math.round(((r.clock - r.from) / (r.to - r.from)) * 1000));
  $("replay-clock").textContent = new Date(r.clock).toLocaleString();
  if (state.selected) drawReplayTrail();
  requestAnimationFrame(replayTick);
}

function drawReplayTrail() {
  const points = (state.replay.flights.get(state.selected) || []).filter((p) => p.ts <= state.replay.clock);
  drawTrail(points);
  drawBattery(points);
  renderAlertList($("panel-alerts"), state.replay.alerts.filter((a) => a.drone_id === state.selected), false);
}

function exitReplay() {
  state.replay = null;
  $("replay-note").hidden = true;
  fitted = false;  // the live fleet may cover another area than the replayed one
  $("stats-title").textContent = "Fleet";
  $("replay").hidden = true;
  history.replaceState(null, "", `?fleet=${encodeURIComponent(state.fleet)}`);
  $("replay-play").disabled = false;
  connect();
  refreshStats();
}

function setupReplayControls() {
  $("replay-toggle").hidden = false;
  $("replay-toggle").addEventListener("click", () => {
    const to = serverNow();
    showReplayForm(to - 15 * 60 * 1000, to, 10);
  });
  $("replay").addEventListener("submit", (e) => {
    e.preventDefault();
    const from = new Date($("replay-from").value).getTime();
    const to = new Date($("replay-to").value).getTime();
    const speed = Number($("replay-speed").value);
    if (state.replay && state.replay.from === from && state.replay.to === to && state.replay.clock < to) {
      Object.assign(state.replay, { playing: true, speed, last: performance.now() });
      $("replay-play").disabled = true; $("replay-pause").disabled = false;
    } else if (to > from) startReplay(from, to, speed);
  });
  $("replay-pause").addEventListener("click", () => {
    if (!state.replay) return;
    state.replay.playing = false;
    $("replay-play").disabled = false; $("replay-pause").disabled = true;
  });
  $("replay-seek").addEventListener("input", (e) => {
    const r = state.replay;
    if (r) r.clock = Math.min(r.loadedUntil, r.from + (Number(e.target.value) / 1000) * (r.to - r.from));
  });
  $("replay-exit").addEventListener("click", exitReplay);
}

// ---- session --------------------------------------------------------------------------------
async function api(path, options = {}) {
  const url = new URL(path, location.origin);
  if (state.fleet && !url.searchParams.has("fleet")) url.searchParams.set("fleet", state.fleet);
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf_token;
  let res;
  try {
    res = await fetch(url, { ...options, headers, credentials: "same-origin" });
  } catch (err) {
    setLive("offline", "off");
    return null;
  }
  if (res.status === 401) { showLogin(); return null; }
  if (!res.ok) return null;
  return res.json();
}

async function checkSession() {
  const res = await fetch("/api/session", { credentials: "same-origin" });
  if (!res.ok) { showLogin(); return false; }
  state.session = await res.json();
  return true;
}

function showLogin() {
  state.session = null;
  if (state.events) { state.events.close(); state.events = null; }
  setLive("signed out", "off");
  $("login").hidden = false;
  $("login-name").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: $("login-name").value, password: $("login-password").value }),
    credentials: "same-origin",
  });
  if (!res.ok) { $("login-error").textContent = "Wrong name or password."; return; }
  state.session = await res.json();
  $("login").hidden = true;
  $("login-password").value = "";
  start();
}

async function logout() {
  await api("/api/logout", { method: "POST" });
  state.drones.clear(); state.alerts = [];
  renderDrones(); renderAlerts();
  showLogin();
}

function start() {
  const fleets = state.session.fleets;
  state.fleet = fleets.includes(params.get("fleet")) ? params.get("fleet") : fleets[0];
  const select = $("fleet");
  select.replaceChildren(...fleets.map((f) => { const o = el("option", f); o.value = f; return o; }));
  select.value = state.fleet;
  select.hidden = fleets.length < 2;
  $("user").textContent = state.session.user;
  $("logout").hidden = false;
  const from = Date.parse(params.get("from") || "");
  const to = Date.parse(params.get("to") || "");
  if (!Number.isNaN(from) && !Number.isNaN(to) && to > from) {
    const speed = Number(params.get("speed")) || 10;
    showReplayForm(from, to, speed);
    startReplay(from, to, speed);
  } else {
    connect();
  }
  refreshStats();
}

// ---- helpers & wiring -----------------------------------------------------------------------
function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function formatAge(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("panel-close").addEventListener("click", closePanel);
$("alert-filter").addEventListener("change", renderAlerts);
for (const id of ["drone-search", "drone-sort", "drone-filter"]) {
  $(id).addEventListener("input", () => renderList(state.replay ? state.replay.clock : serverNow(), true));
}
$("drone-labels").addEventListener("change", toggleLabels);
$("sheet-toggle").addEventListener("click", () => setSheet($("side").classList.contains("collapsed")));
new ResizeObserver(() => map.invalidateSize({ pan: false })).observe($("map-wrap"));
$("fleet").addEventListener("change", (e) => {
  state.fleet = e.target.value;
  state.drones.clear(); state.alerts = []; fitted = false;
  closePanel();
  history.replaceState(null, "", `?fleet=${encodeURIComponent(state.fleet)}`);
  if (!state.replay) connect();
  refreshStats();
});
setupReplayControls();
$("legend-ok").textContent = `> ${config.batteryLowPct} %`;
$("legend-warn").textContent = `${config.batteryCriticalPct}–${config.batteryLowPct} %`;
$("legend-crit").textContent = `≤ ${config.batteryCriticalPct} %`;
// Ages move on even when no report arrives: re-judge stale/lost every second.
setInterval(() => { if (!state.replay && state.session) renderDrones(); }, 1000);
setInterval(refreshStats, 10000);
checkSession().then((ok) => ok && start());
