// Fleet map: polls the JSON API and keeps one marker per drone, coloured by battery.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const map = L.map("map", { preferCanvas: true, worldCopyJump: true }).setView([47.3769, 8.5417], 12);
if (config.tileUrl) {
  // Without network the tiles fail quietly and the markers stay on the plain background.
  L.tileLayer(config.tileUrl, { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
}

const markers = new Map();
let selected = null;
let trail = null;
let fitted = false;

function batteryColour(pct) {
  if (pct < 15) return "#d7263d";
  if (pct < 35) return "#f49d37";
  return "#2e9d5b";
}

function describe(drone) {
  return [
    ["battery", `${drone.battery_pct.toFixed(0)} %`],
    ["altitude", `${drone.alt_m.toFixed(0)} m`],
    ["speed", `${drone.speed_mps.toFixed(1)} m/s`],
    ["heading", `${drone.heading_deg.toFixed(0)}°`],
    ["position", `${drone.lat.toFixed(5)}, ${drone.lon.toFixed(5)}`],
    ["status", drone.status || "—"],
    ["last report", new Date(drone.ts).toLocaleTimeString()],
  ];
}

function showPanel(drone) {
  const panel = document.getElementById("panel");
  panel.hidden = false;
  document.getElementById("panel-title").textContent = drone.drone_id;
  const dl = document.getElementById("panel-state");
  dl.replaceChildren(...describe(drone).flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

async function loadTrail(droneId) {
  const res = await fetch(`/api/drones/${encodeURIComponent(droneId)}/track?limit=500`);
  if (!res.ok) return;
  const { points } = await res.json();
  const latlngs = points.map((p) => [p.lat, p.lon]);
  if (trail) trail.setLatLngs(latlngs);
  else trail = L.polyline(latlngs, { color: "#3a6ea5", weight: 3, opacity: 0.8 }).addTo(map);
}

function upsertMarker(drone) {
  let marker = markers.get(drone.drone_id);
  const style = { radius: 7, color: "#1d2330", weight: 1, fillColor: batteryColour(drone.battery_pct), fillOpacity: 0.9 };
  if (!marker) {
    marker = L.circleMarker([drone.lat, drone.lon], style).addTo(map);
    marker.bindTooltip(drone.drone_id);
    marker.on("click", () => { selected = drone.drone_id; showPanel(marker.drone); loadTrail(selected); });
    markers.set(drone.drone_id, marker);
  } else {
    marker.setLatLng([drone.lat, drone.lon]);
    marker.setStyle(style);
  }
  marker.drone = drone;
  marker.getElement()?.setAttribute("data-drone-id", drone.drone_id);
}

async function refresh() {
  try {
    const res = await fetch("/api/drones");
    if (!res.ok) throw new Error(res.statusText);
    const { drones } = await res.json();
    drones.forEach(upsertMarker);
    document.getElementById("summary").textContent = `${drones.length} drones`;
    document.body.dataset.drones = String(drones.length);
    if (!fitted && drones.length) {
      map.fitBounds(L.latLngBounds(drones.map((d) => [d.lat, d.lon])).pad(0.2));
      fitted = true;
    }
    if (selected && markers.has(selected)) {
      showPanel(markers.get(selected).drone);
      loadTrail(selected);
    }
  } catch (err) {
    document.getElementById("summary").textContent = `cannot reach the API (${err.message})`;
  } finally {
    setTimeout(refresh, config.refreshMs);
  }
}

refresh();
