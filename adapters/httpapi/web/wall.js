'use strict';
// mediasvc device wall: every device the key may see as a live tile, all on
// one RTCPeerConnection the server offers (one transceiver per tile, offered
// again as devices come and go). Tiles out of the viewport are reported
// hidden and the server pauses them. A click opens the full view; with
// tiles selected, a click on one of them sends the same tap to all of them
// (POST /api/v1/input, coordinates as fractions of each picture).
// window.mediasvcWall exposes {pc, tiles, results, wallId} for tests.
(() => {
  const $ = (sel) => document.querySelector(sel);
  const KEY_STORE = 'mediasvc.apiKey';
  const accessToken = new URLSearchParams(location.search).get('access_token') || '';
  const apiKey = () => sessionStorage.getItem(KEY_STORE) || accessToken;
  const W = window.mediasvcWall = { pc: null, tiles: {}, results: {}, wallId: '', offers: 0 };
  const tiles = new Map();   // device id → {el, video, stream, info, selected, mid}
  const byMid = new Map();   // mid → device id
  let ws = null;

  $('#apikey').value = sessionStorage.getItem(KEY_STORE) || '';
  $('#keyform').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#apikey').value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE);
    location.reload();
  });
  function show(text) { const m = $('#msg'); m.textContent = text || ''; m.hidden = !text; }
  function setState(s) { $('#state').textContent = s; }

  async function api(method, path, body) {
    const headers = {};
    if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText);
    return data;
  }

  // ---- viewport: hidden tiles are paused by the server ----
  const seen = new Map(); // device id → last visibility sent
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) report(e.target.dataset.device, e.isIntersecting);
  }, { threshold: 0 });
  function report(id, visible) {
    if (!ws || ws.readyState !== WebSocket.OPEN || !tiles.get(id) || !tiles.get(id).mid) return;
    if (seen.get(id) === visible) return;
    seen.set(id, visible);
    ws.send(JSON.stringify({ type: 'visible', device_id: id, visible }));
  }

  // ---- tiles ----
  function tileFor(t) {
    let tl = tiles.get(t.device_id);
    if (tl) return tl;
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.device = t.device_id;
    const video = document.createElement('video');
    video.autoplay = true; video.muted = true; video.playsInline = true;
    const cap = document.createElement('div'); cap.className = 'cap';
    const sel = document.createElement('input'); sel.type = 'checkbox'; sel.title = 'select for group input';
    const name = document.createElement('span'); name.className = 'name';
    const st = document.createElement('span'); st.className = 'pill';
    const result = document.createElement('div'); result.className = 'result';
    cap.append(sel, name, st);
    el.append(video, cap, result);
    tl = { el, video, sel, name, st, result, stream: new MediaStream(), info: t, mid: '' };
    video.srcObject = tl.stream;
    sel.addEventListener('change', () => { el.classList.toggle('selected', sel.checked); countSelected(); });
    video.addEventListener('click', (e) => onTileClick(t.device_id, e, 'tap'));
    video.addEventListener('contextmenu', (e) => { e.preventDefault(); onTileClick(t.device_id, e, 'long_press'); });
    tiles.set(t.device_id, tl);
    placeTile(tl);
    io.observe(el);
    return tl;
  }
  function placeTile(tl) {
    const box = $('#tiles');
    const after = [...box.children].find((c) => c.dataset.device > tl.el.dataset.device);
    box.insertBefore(tl.el, after || null);
  }
  function applyTiles(list) {
    const ids = new Set(list.map((t) => t.device_id));
    for (const [id, tl] of tiles) {
      if (!ids.has(id)) { io.unobserve(tl.el); tl.el.remove(); tiles.delete(id); seen.delete(id); }
    }
    for (const t of list) {
      const tl = tileFor(t);
      tl.info = t;
      tl.name.textContent = t.name || t.device_id;
      tl.name.title = t.device_id;
      tl.st.textContent = t.state + (t.instance ? ' on ' + t.instance : '');
      tl.st.title = t.error || '';
      if (t.mid && t.mid !== tl.mid) { tl.mid = t.mid; byMid.set(t.mid, t.device_id); }
      if (t.width && t.height) tl.video.style.aspectRatio = t.width + ' / ' + t.height;
      W.tiles[t.device_id] = t;
    }
    for (const id of Object.keys(W.tiles)) if (!ids.has(id)) delete W.tiles[id];
    $('#count').textContent = tiles.size + ' tiles';
  }
  function countSelected() { $('#nsel').textContent = String(selected().length); }
  function selected() { return [...tiles].filter(([, tl]) => tl.sel.checked).map(([id]) => id); }

  // ---- group input and the full view ----
  function onTileClick(id, e, action) {
    const sel = selected();
    if (sel.length === 0 || !sel.includes(id)) {
      if (action === 'tap') location.href = '/?device=' + encodeURIComponent(id) + (accessToken ? '&access_token=' + encodeURIComponent(accessToken) : '');
      return;
    }
    const r = pictureRect(tiles.get(id).video);
    const x = (e.clientX - r.left) / r.width, y = (e.clientY - r.top) / r.height;
    if (!(x >= 0 && x < 1 && y >= 0 && y < 1)) return; // on the letterbox
    group({ action, x, y });
  }
  // pictureRect is where the picture lies inside the video element
  // (object-fit: contain letterboxes it).
  function pictureRect(v) {
    const r = v.getBoundingClientRect();
    const vw = v.videoWidth || r.width, vh = v.videoHeight || r.height;
    const s = Math.min(r.width / vw, r.height / vh);
    const w = vw * s, h = vh * s;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
  }
  async function group(input) {
    const devices = selected();
    if (devices.length === 0) { show('Select devices first.'); return; }
    show('');
    try {
      const data = await api('POST', '/api/v1/input', { devices, input });
      for (const res of data.results || []) {
        W.results[res.device_id] = res;
        const tl = tiles.get(res.device_id);
        if (!tl) continue;
        tl.result.className = 'result ' + (res.ok ? 'ok' : 'bad');
        tl.result.textContent = res.ok ? input.action + ' sent' : (res.error ? res.error.code + ': ' + res.error.message : 'refused');
      }
    } catch (err) { show('Group input failed: ' + err.message); }
  }
  $('#selall').addEventListener('click', () => { for (const [, tl] of tiles) { tl.sel.checked = true; tl.el.classList.add('selected'); } countSelected(); });
  $('#selnone').addEventListener('click', () => { for (const [, tl] of tiles) { tl.sel.checked = false; tl.el.classList.remove('selected'); } countSelected(); });
  for (const b of document.querySelectorAll('[data-key]')) b.addEventListener('click', () => group({ action: 'key', key: b.dataset.key }));
  $('#gsend').addEventListener('click', () => { const t = $('#gtext').value; if (t) group({ action: 'text', text: t }); });

  // ---- signaling: the server offers, the page answers ----
  async function start() {
    let w;
    try { w = await api('POST', '/api/v1/walls'); } catch (err) { show('Cannot open the wall: ' + err.message); setState('failed'); return; }
    W.wallId = w.wall_id;
    const pc = new RTCPeerConnection({ iceServers: (w.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })) });
    W.pc = pc;
    pc.ontrack = (e) => {
      const id = byMid.get(e.transceiver.mid);
      const tl = id && tiles.get(id);
      if (!tl) return;
      for (const t of tl.stream.getVideoTracks()) tl.stream.removeTrack(t);
      tl.stream.addTrack(e.track);
      tl.video.play().catch(() => {});
    };
    pc.onicecandidate = (e) => {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } }));
    };
    pc.onconnectionstatechange = () => setState(pc.connectionState);
    ws = new WebSocket(w.ws_url);
    ws.onopen = () => setState('waiting for devices');
    ws.onclose = (e) => { setState('closed'); if (e.reason) show('Wall closed: ' + e.reason); };
    let chain = Promise.resolve();
    ws.onmessage = (e) => { const m = JSON.parse(e.data); chain = chain.then(() => onMessage(pc, m)).catch((err) => show(String(err))); };
  }
  async function onMessage(pc, m) {
    switch (m.type) {
      case 'tiles': applyTiles(m.tiles || []); break;
      case 'offer':
        applyTiles(m.tiles || []);
        W.offers++;
        await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        ws.send(JSON.stringify({ type: 'answer', sdp: pc.localDescription.sdp }));
        // Tiles already on screen report their visibility once on the connection.
        for (const [id, tl] of tiles) if (tl.mid && !seen.has(id)) {
          const r = tl.el.getBoundingClientRect();
          report(id, r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth);
        }
        break;
      case 'candidate':
        if (m.candidate && m.candidate.candidate) await pc.addIceCandidate(m.candidate);
        break;
      case 'state': break;
      case 'error': show(m.code + ': ' + m.message); break;
    }
  }
  start();
})();
