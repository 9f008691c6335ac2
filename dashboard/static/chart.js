// A small line chart on a canvas: enough for battery over time, no library needed.
"use strict";

function drawLineChart(canvas, points, options = {}) {
  const { yMin = 0, yMax = 100, colour = "#3a6ea5", unit = "%", fill = true } = options;
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = canvas.clientWidth || canvas.width;
  const cssHeight = canvas.clientHeight || canvas.height;
  canvas.width = cssWidth * ratio;
  canvas.height = cssHeight * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  const pad = { left: 30, right: 6, top: 6, bottom: 16 };
  const w = cssWidth - pad.left - pad.right;
  const h = cssHeight - pad.top - pad.bottom;
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#6b7689";
  ctx.strokeStyle = "#e3e8ef";
  ctx.lineWidth = 1;
  for (const v of [yMin, (yMin + yMax) / 2, yMax]) {
    const y = pad.top + h - ((v - yMin) / (yMax - yMin)) * h;
    ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(pad.left + w, y); ctx.stroke();
    ctx.fillText(`${Math.round(v)}${unit}`, 2, y + 3);
  }
  if (points.length < 2) {
    ctx.fillText(points.length ? "one point so far" : "no data yet", pad.left + 8, pad.top + h / 2);
    return;
  }
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  const x = (t) => pad.left + ((t - t0) / Math.max(1, t1 - t0)) * w;
  const y = (v) => pad.top + h - ((Math.min(yMax, Math.max(yMin, v)) - yMin) / (yMax - yMin)) * h;
  ctx.beginPath();
  points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.stroke();
  if (fill) {
    ctx.lineTo(x(t1), pad.top + h);
    ctx.lineTo(x(t0), pad.top + h);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.globalAlpha = 1;
  }
  ctx.fillStyle = "#6b7689";
  const label = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  ctx.fillText(label(t0), pad.left, cssHeight - 3);
  const right = label(t1);
  ctx.fillText(right, pad.left + w - ctx.measureText(right).width, cssHeight - 3);
}
