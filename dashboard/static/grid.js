// The coordinate grid drawn when no base map loads (leaflet-auto-graticule, vendored). A module,
// so it runs after the classic scripts and before app.js (deferred, in document order).
import AutoGraticule from "./vendor/leaflet-auto-graticule/L.AutoGraticule.js";

window.AutoGraticule = AutoGraticule;
