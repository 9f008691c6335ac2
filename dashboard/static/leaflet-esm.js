// The page's Leaflet (loaded as a classic script, global L) as an ES module, for vendored
// plugins published as modules that import from "leaflet".
const L = window.L;
export default L;
export const { LayerGroup, Util, LatLng, Polyline, marker, divIcon, LatLngBounds, latLngBounds } = L;
