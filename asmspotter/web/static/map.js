// The AOI map: outline, latest composite, sites coloured by last event, sized by
// confidence. Stored strings reach the page only through textContent (never innerHTML).
"use strict";

(function () {
  const CONFIDENCE_RADIUS = { highest: 10, high: 8, nominal: 6 };

  function popupFor(props) {
    const box = document.createElement("div");
    box.className = "site-popup";
    const link = document.createElement("a");
    link.href = props.url;
    link.textContent = props.site_id;
    const title = document.createElement("strong");
    title.appendChild(link);
    box.appendChild(title);
    const facts = document.createElement("dl");
    const rows = [
      ["event", props.event || "–"],
      ["area", props.area_ha.toFixed(1) + " ha"],
      ["confidence", props.confidence || "not scored"],
      ["review", props.review + (props.reason ? " (" + props.reason + ")" : "")],
      ["seen", (props.first_seen || "?") + " → " + (props.last_seen || "?")],
    ];
    if (props.context_layers) rows.push(["inside", props.context_layers]);
    for (const [key, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.appendChild(dt);
      facts.appendChild(dd);
    }
    box.appendChild(facts);
    return box;
  }

  function draw(mapEl, data) {
    const map = L.map(mapEl, { zoomSnap: 0.25 });
    const tileUrl = mapEl.dataset.tileUrl;
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: 18, attribution: "basemap" }).addTo(map);
    }
    const layers = {};
    const bounds = L.latLngBounds([]);
    if (data.overlay) {
      const b = data.overlay.bounds;
      layers["composite " + (data.window_end || "")] = L.imageOverlay(data.overlay.url, b, {
        className: "composite-overlay",
      }).addTo(map);
      bounds.extend(b);
      document.getElementById("overlay-note").textContent =
        "Background: the composite of the window ending " + data.window_end + ".";
    }
    if (data.outline) {
      const outline = L.geoJSON(data.outline, {
        style: { color: "#ffe14d", weight: 2, fill: false, dashArray: "6 4" },
      }).addTo(map);
      layers["AOI outline"] = outline;
      bounds.extend(outline.getBounds());
    }
    const outlines = L.geoJSON(data.sites, {
      style: (f) => ({
        color: f.properties.colour,
        weight: 2,
        fillOpacity: 0.15,
        dashArray: f.properties.review === "dismissed" ? "4 3" : null,
      }),
    }).addTo(map);
    layers["site outlines"] = outlines;
    const markers = L.layerGroup().addTo(map);
    for (const feature of data.sites.features) {
      const p = feature.properties;
      const marker = L.circleMarker([p.centroid_lat, p.centroid_lon], {
        radius: CONFIDENCE_RADIUS[p.confidence] || CONFIDENCE_RADIUS.nominal,
        color: p.review === "confirmed" ? "#000" : "#222",
        weight: p.review === "confirmed" ? 4 : 1,
        fillColor: p.colour,
        fillOpacity: 0.9,
        className: "site-marker site-" + (p.event || "unknown") + " review-" + p.review,
      });
      marker.bindPopup(popupFor(p));
      marker.bindTooltip(p.site_id);
      marker.on("dblclick", () => { window.location.href = p.url; });
      marker.addTo(markers);
      bounds.extend(marker.getLatLng());
    }
    layers["site markers"] = markers;
    const places = L.layerGroup();
    for (const [name, lonlat] of Object.entries(data.labels || {})) {
      L.marker([lonlat[1], lonlat[0]], { opacity: 0 })
        .bindTooltip(name, { permanent: true, className: "place-label" })
        .addTo(places);
    }
    if (Object.keys(data.labels || {}).length) {
      layers["places"] = places.addTo(map);
    }
    L.control.layers(null, layers, { collapsed: false }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [10, 10] });
    } else {
      map.setView([0, 0], 2);
    }
    mapEl.dataset.siteCount = String(data.sites.features.length);
    mapEl.classList.add("map-ready");
  }

  document.addEventListener("DOMContentLoaded", () => {
    const mapEl = document.getElementById("map");
    if (!mapEl) return;
    fetch(mapEl.dataset.mapUrl, { credentials: "same-origin" })
      .then((r) => {
        if (!r.ok) throw new Error("map data: HTTP " + r.status);
        return r.json();
      })
      .then((data) => draw(mapEl, data))
      .catch((err) => {
        mapEl.textContent = "The map could not be loaded: " + err.message;
        mapEl.classList.add("map-failed");
      });
  });
})();
