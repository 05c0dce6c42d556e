'use strict';
// mediasvc viewer: lists devices, plays one over WebRTC with the session
// WebSocket for signaling, and sends touches and keys back. window.mediasvc
// exposes {pc, session, media, mediaLines} for tests (media: the codec,
// rendition, transport and resolution the page shows under the picture;
// mediaLines: every text that line has shown, in order).
(() => {
  const $ = (sel) => document.querySelector(sel);
  const KEY_STORE = 'mediasvc.apiKey';
  const TAP_MAX_MOVE = 10;      // px on screen: below this a press is a tap
  const LONG_PRESS_MS = 500;
  const MAX_DURATION_MS = 10000;

  const state = { session: null, ws: null, pc: null, pending: [], statsTimer: 0, last: null, role: '' };
  window.mediasvc = { pc: null, session: null, media: null, mediaLines: [], timing: {} };

  // ---- API key or access link ----
  // An access link (?access_token=<JWT>) authenticates every call of this
  // page; it is kept across the page's own navigation.
  const accessToken = new URLSearchParams(location.search).get('access_token') || '';
  // ?relay=1 forces every connection through the session's TURN servers
  // (iceTransportPolicy "relay"), to try a TURN setup from a browser.
  const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
  const withToken = (path) => accessToken ? path + (path.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(accessToken) : path;
  const apiKey = () => sessionStorage.getItem(KEY_STORE) || accessToken;
  $('#apikey').value = sessionStorage.getItem(KEY_STORE) || '';
  $('#keyform').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#apikey').value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE);
    if (!$('#devices-view').hidden) loadDevices();
  });

  async function api(method, path, body) {
    const headers = {};
    if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    if (res.status !== 204) { try { data = await res.json(); } catch (_) { /* not JSON */ } }
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || res.statusText);
      err.status = res.status;
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }

  function show(el, text) { el.textContent = text || ''; el.hidden = !text; }

  // ---- device list ----
  async function loadDevices() {
    const tbody = $('#devices tbody');
    show($('#devices-msg'), '');
    try {
      const data = await api('GET', '/api/v1/devices');
      tbody.replaceChildren();
      const devs = (data && data.devices) || [];
      if (devs.length === 0) show($('#devices-msg'), 'No devices.');
      for (const d of devs) {
        const tr = document.createElement('tr');
        const cell = (text, cls) => { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); };
        cell(d.name || d.id);
        cell(d.id, 'id');
        cell(d.state + (d.breaker && d.breaker !== 'closed' ? ' (breaker ' + d.breaker + ')' : ''), 'st-' + d.state);
        cell(d.width && d.height ? d.width + '×' + d.height : '—');
        cell(String(d.viewers || 0));
        const td = document.createElement('td');
        const b = document.createElement('button');
        b.textContent = 'Play'; b.className = 'primary';
        b.disabled = d.state !== 'online';
        b.addEventListener('click', () => { history.pushState(null, '', withToken('/?device=' + encodeURIComponent(d.id))); route(); });
        td.appendChild(b); tr.appendChild(td); tbody.appendChild(tr);
      }
    } catch (err) {
      show($('#devices-msg'), err.status === 401 ? 'This server needs an API key: paste it above and Save.' : 'Could not list devices: ' + err.message);
    }
  }
  $('#refresh').addEventListener('click', loadDevices);

  // ---- player ----
  function setState(text, cls) {
    const el = $('#state');
    el.textContent = text; el.className = 'pill ' + (cls || '');
  }

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
  }

  async function play(deviceId, wantRole) {
    stop(false);
    $('#devices-view').hidden = true;
    $('#player-view').hidden = false;
    $('#player-title').textContent = deviceId;
    show($('#player-msg'), '');
    setState('creating session');
    let session;
    try {
      session = await api('POST', '/api/v1/sessions', { device_id: deviceId, role: wantRole });
    } catch (err) {
      if ((err.status === 403 || err.status === 423) && wantRole === 'controller') {
        try { session = await api('POST', '/api/v1/sessions', { device_id: deviceId, role: 'viewer' }); } catch (e2) { err = e2; }
      }
      if (!session) {
        setState('error', 'bad');
        show($('#player-msg'), err.status === 401 ? 'This server needs an API key: paste it above and Save.' : 'Could not start: ' + err.message);
        return;
      }
    }
    state.session = session;
    state.role = session.role;
    state.device = deviceId;
    state.backend = '';
    api('GET', '/api/v1/devices/' + encodeURIComponent(deviceId)).then((d) => { state.backend = d.backend || ''; }).catch(() => {});
    $('#role').textContent = session.role;
    for (const b of document.querySelectorAll('[data-action], [data-control]')) b.disabled = session.role !== 'controller';
    window.mediasvc.session = session;
    connect(session);
    loadRecordings();
  }

  function connect(session) {
    setState('connecting');
    const ws = new WebSocket(session.ws_url);
    state.ws = ws;
    // The session's own ICE servers: TURN REST credentials are minted per
    // session and expire with it.
    const pc = new RTCPeerConnection({ iceServers: session.ice_servers || [], iceTransportPolicy: relayOnly ? 'relay' : 'all' });
    state.pc = pc;
    window.mediasvc.pc = pc;
    state.pending = [];
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    // timing: ms since navigation of the offer and of the first frame
    // shown (for the first-frame figures in BENCHMARKS.md).
    const timing = window.mediasvc.timing = {};
    const v0 = $('#video');
    const firstFrame = () => { if (!timing.firstFrame) timing.firstFrame = performance.now(); };
    if (v0.requestVideoFrameCallback) v0.requestVideoFrameCallback(firstFrame);
    else v0.addEventListener('loadeddata', firstFrame, { once: true });
    pc.ontrack = (ev) => {
      const v = $('#video');
      if (!v.srcObject) v.srcObject = ev.streams[0] || new MediaStream();
      if (!ev.streams[0]) v.srcObject.addTrack(ev.track);
      if (ev.track.kind === 'audio') $('#unmute').hidden = !v.muted;
      v.play().catch(() => { /* autoplay may wait for a gesture */ });
    };
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) send({ type: 'candidate', candidate: ev.candidate.toJSON() });
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      setState(s, s === 'connected' ? 'ok' : (s === 'failed' || s === 'closed') ? 'bad' : 'warn');
    };

    ws.onopen = async () => {
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        send({ type: 'offer', sdp: pc.localDescription.sdp });
        timing.offer = performance.now();
        setState('negotiating', 'warn');
      } catch (err) {
        show($('#player-msg'), 'WebRTC error: ' + err.message);
      }
    };
    ws.onmessage = async (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      switch (m.type) {
        case 'answer':
          await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          for (const c of state.pending.splice(0)) await addCandidate(c);
          // The rendition is chosen by the time the answer comes: ask
          // for it now rather than wait for the first pushed stats.
          fetchRendition(session, pc);
          break;
        case 'candidate':
          if (pc.remoteDescription) await addCandidate(m.candidate); else state.pending.push(m.candidate);
          break;
        case 'state':
          show($('#player-msg'), m.state === 'device_unavailable' ? 'The device is unavailable' + (m.reason ? ': ' + m.reason : '') + '.' : '');
          break;
        case 'stats':
          state.rendition = (m.stats || {}).rendition || state.rendition;
          renderStats($('#server-stats'), serverStats(m.stats || {}));
          break;
        case 'control':
          renderControl(m);
          break;
        case 'clipboard':
          deviceClipboard(m);
          break;
        case 'error':
          if (m.code === 'no_common_codec') {
            show($('#player-msg'), 'This browser and the device have no video codec in common: ' + m.message);
            break;
          }
          show($('#player-msg'), 'Server: ' + m.message + (m.code === 'reserved' && m.subject ? ' (reserved for ' + m.subject + ' until ' + m.until + ')' : ''));
          break;
        case 'bye':
          show($('#player-msg'), 'Session ended' + (m.reason ? ': ' + m.reason : '') + '.');
          stop(false);
          break;
      }
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      if (ev.code !== 1000) show($('#player-msg'), 'Signaling closed (' + ev.code + (ev.reason ? ' ' + ev.reason : '') + ').');
      setState('closed', 'bad');
    };
    state.statsTimer = setInterval(pollStats, 1000);
  }

  // fetchRendition reads the session's rendition from its stats once,
  // right after the answer (the pushed stats update it later).
  function fetchRendition(session, pc) {
    api('GET', '/api/v1/sessions/' + encodeURIComponent(session.session_id) + '/stats').then((st) => {
      if (state.pc === pc && st && st.rendition && !state.rendition) state.rendition = st.rendition;
    }).catch(() => { /* the pushed stats bring it */ });
  }

  // renderControl shows who controls the device and who waits: every
  // viewer of the device gets a "control" message on each change.
  function renderControl(m) {
    window.mediasvc.control = m;
    const c = m.control || { controllers: [], queue: [] };
    $('#control').textContent = m.you + (m.position ? ' #' + m.position : '');
    const who = (c.controllers || []).map((h) => h.subject + (h.grace_until ? ' (reconnecting)' : '')).join(', ') || 'nobody';
    const queue = (c.queue || []).map((h) => h.subject).join(', ');
    show($('#control-info'), 'In control: ' + who + (queue ? ' · waiting: ' + queue : ''));
  }
  for (const b of document.querySelectorAll('[data-control]')) {
    b.addEventListener('click', () => send({ type: 'control', action: b.dataset.control }));
  }

  // deviceClipboard offers the device's clipboard (sent to controllers
  // only, as it changes) for copying to this computer's clipboard.
  function deviceClipboard(m) {
    state.deviceClip = m.text || '';
    window.mediasvc.deviceClipboard = state.deviceClip;
    const b = $('#device-clip');
    const n = [...state.deviceClip].length;
    b.textContent = 'Device clipboard: copy (' + n + ' char' + (n === 1 ? '' : 's') + (m.truncated ? ', cut' : '') + ')';
    b.title = state.deviceClip.slice(0, 200);
    b.hidden = false;
  }
  $('#device-clip').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(state.deviceClip || '');
      show($('#player-msg'), 'Copied the device clipboard.');
    } catch (err) { show($('#player-msg'), 'Copy failed: ' + err.message); }
  });

  async function addCandidate(c) {
    try { await state.pc.addIceCandidate(c); } catch (err) { console.warn('addIceCandidate', err); }
  }

  function stop(sendBye) {
    if (sendBye) send({ type: 'bye' });
    clearInterval(state.statsTimer);
    if (state.ws) { const ws = state.ws; state.ws = null; setTimeout(() => ws.close(1000), sendBye ? 200 : 0); }
    if (state.pc) { state.pc.close(); state.pc = null; }
    const v = $('#video');
    v.srcObject = null;
    state.last = null;
    state.rendition = '';
    state.deviceClip = '';
    $('#device-clip').hidden = true;
    window.mediasvc.media = null;
    $('#media-line').textContent = '—';
    setState('stopped');
  }

  $('#stop').addEventListener('click', () => { stop(true); history.pushState(null, '', withToken('/')); route(); });
  $('#keyframe').addEventListener('click', () => send({ type: 'keyframe' }));
  $('#unmute').addEventListener('click', () => { const v = $('#video'); v.muted = false; v.play().catch(() => {}); $('#unmute').hidden = true; });
  for (const b of document.querySelectorAll('[data-action]')) {
    b.addEventListener('click', () => send({ type: 'input', action: b.dataset.action }));
  }

  // ---- stats ----
  function renderStats(dl, rows) {
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v;
      dl.append(dt, dd);
    }
  }
  const kbps = (bps) => (bps / 1000).toFixed(0) + ' kbit/s';
  function serverStats(s) {
    return [
      ['ice', s.ice_state || '—'], ['fps', (s.frame_rate || 0).toFixed(1)], ['bitrate', kbps(s.bitrate_bps || 0)],
      ['loss', ((s.loss_fraction || 0) * 100).toFixed(1) + ' %'], ['lost', String(s.packets_lost || 0)],
      ['jitter', (s.jitter_ms || 0).toFixed(1) + ' ms'], ['rtt', (s.rtt_ms || 0).toFixed(0) + ' ms'],
      ['nacks / plis', (s.nacks || 0) + ' / ' + (s.plis || 0)], ['keyframe skips', String(s.keyframe_skips || 0)],
      ['estimate (REMB)', s.estimated_bitrate_bps ? kbps(s.estimated_bitrate_bps) : '—'],
    ];
  }
  async function pollStats() {
    const pc = state.pc;
    if (!pc) return;
    const report = await pc.getStats();
    let video = null, pair = null, selected = '';
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') video = r;
      if (r.type === 'transport' && r.selectedCandidatePairId) selected = r.selectedCandidatePairId;
    });
    report.forEach((r) => {
      if (r.type !== 'candidate-pair') return;
      // Chromium names the selected pair in its transport stats, Firefox
      // marks it selected.
      if (selected ? r.id === selected : (r.selected || (r.state === 'succeeded' && (r.nominated || !pair)))) pair = r;
    });
    if (!video) return;
    renderMedia(report, video, pair);
    let bitrate = 0;
    if (state.last) {
      const dt = (video.timestamp - state.last.timestamp) / 1000;
      if (dt > 0) bitrate = 8 * (video.bytesReceived - state.last.bytesReceived) / dt;
    }
    state.last = { timestamp: video.timestamp, bytesReceived: video.bytesReceived };
    const v = $('#video');
    renderStats($('#client-stats'), [
      ['resolution', v.videoWidth ? v.videoWidth + '×' + v.videoHeight : '—'],
      ['fps', String(video.framesPerSecond || 0)], ['bitrate', kbps(bitrate)],
      ['frames decoded', String(video.framesDecoded || 0)], ['packets lost', String(video.packetsLost || 0)],
      ['jitter', ((video.jitter || 0) * 1000).toFixed(1) + ' ms'],
      ['rtt', pair && pair.currentRoundTripTime !== undefined ? (pair.currentRoundTripTime * 1000).toFixed(0) + ' ms' : '—'],
    ]);
  }

  // renderMedia shows what the browser gets: the codec (with its H.264
  // profile), the server's rendition (read after the answer, then pushed
  // in its stats), the transport of the selected candidate pair (udp, tcp,
  // relay) and the picture size. The line keeps its last text (at first
  // "—") until all four are known: it never shows a guess.
  function renderMedia(report, video, pair) {
    const c = video.codecId && report.get(video.codecId);
    const local = pair && report.get(pair.localCandidateId);
    const v = $('#video');
    if (!c || !c.mimeType || !local || !state.rendition || !v.videoWidth) return;
    let codec = c.mimeType.replace(/^video\//, '');
    const plid = /profile-level-id=([0-9a-fA-F]{6})/.exec(c.sdpFmtpLine || '');
    if (plid) codec += ' ' + plid[1].toLowerCase();
    const transport = local.candidateType === 'relay' ? 'relay' + (local.relayProtocol ? ' (' + local.relayProtocol + ')' : '') : local.protocol;
    if (!transport) return;
    const media = { codec, rendition: state.rendition, transport, resolution: v.videoWidth + '×' + v.videoHeight };
    window.mediasvc.media = media;
    const line = media.codec + ' · ' + (media.rendition === 'original' ? 'original stream' : 'rendition ' + media.rendition) +
      ' · ' + media.transport + ' · ' + media.resolution;
    if ($('#media-line').textContent !== line) {
      $('#media-line').textContent = line;
      window.mediasvc.mediaLines.push(line);
    }
  }

  // ---- input ----
  // toVideo maps a client point to video pixels, accounting for the
  // letterboxing of object-fit: contain. It returns null outside the picture
  // unless clamp is set.
  function toVideo(v, clientX, clientY, clamp) {
    const vw = v.videoWidth, vh = v.videoHeight;
    if (!vw || !vh) return null;
    const r = v.getBoundingClientRect();
    const scale = Math.min(r.width / vw, r.height / vh);
    const offX = (r.width - vw * scale) / 2, offY = (r.height - vh * scale) / 2;
    let x = (clientX - r.left - offX) / scale, y = (clientY - r.top - offY) / scale;
    if (clamp) { x = Math.min(Math.max(x, 0), vw - 1); y = Math.min(Math.max(y, 0), vh - 1); }
    if (x < 0 || y < 0 || x >= vw || y >= vh) return null;
    return { x: Math.floor(x), y: Math.floor(y) };
  }

  const video = $('#video');
  // With scrcpy every finger, the mouse and a pen go as Pointer Events
  // steps ("pointer" input, up to 10 fingers: pinch works); the shell gets
  // taps and swipes, the nearest it can do without a process per move.
  const pointers = new Map(); // browser pointerId → 0..9
  const rich = () => state.role === 'controller' && state.backend === 'scrcpy';
  function pointerMsg(e, phase) {
    let id = pointers.get(e.pointerId);
    if (id === undefined) {
      if (phase !== 'down' && phase !== 'hover') return null;
      id = 0; while ([...pointers.values()].includes(id)) id++;
      if (id > 9) return null;
      if (phase === 'down') pointers.set(e.pointerId, id);
    }
    const p = toVideo(video, e.clientX, e.clientY, phase !== 'down' && phase !== 'hover');
    if (!p) return null;
    const m = { type: 'input', action: 'pointer', phase, pointer_id: phase === 'hover' ? 0 : id, pointer_type: e.pointerType || 'mouse', x: p.x, y: p.y };
    if (e.pointerType !== 'mouse' && e.pressure > 0 && e.pressure < 1) m.pressure = e.pressure;
    if (e.pointerType === 'mouse') m.buttons = e.buttons & 31;
    if (phase === 'up' || phase === 'cancel') pointers.delete(e.pointerId);
    return m;
  }
  for (const [ev, phase] of [['pointerdown', 'down'], ['pointermove', 'move'], ['pointerup', 'up'], ['pointercancel', 'cancel']]) {
    video.addEventListener(ev, (e) => {
      if (!rich()) return;
      let ph = phase;
      if (ph === 'move' && !pointers.has(e.pointerId)) { if (e.pointerType !== 'mouse') return; ph = 'hover'; }
      const m = pointerMsg(e, ph);
      if (!m) return;
      if (ph === 'down') { video.focus(); video.setPointerCapture(e.pointerId); }
      send(m);
      e.preventDefault();
      e.stopImmediatePropagation();
    });
  }
  video.style.touchAction = 'none';
  video.addEventListener('wheel', (e) => {
    if (state.role !== 'controller') return;
    const p = toVideo(video, e.clientX, e.clientY, false);
    if (!p) return;
    // One notch per ~100 px of deltaY (pixel mode); lines and pages count as notches.
    const unit = e.deltaMode === 0 ? 100 : 1;
    const clamp = (v) => Math.max(-16, Math.min(16, v / unit));
    const sx = clamp(e.deltaX), sy = clamp(e.deltaY);
    if (sx || sy) send({ type: 'input', action: 'scroll', x: p.x, y: p.y, scroll_x: sx, scroll_y: sy });
    e.preventDefault();
  }, { passive: false });
  let press = null;
  video.addEventListener('pointerdown', (e) => {
    video.focus();
    if (state.role !== 'controller' || e.button !== 0) return;
    const p = toVideo(video, e.clientX, e.clientY, false);
    if (!p) return;
    press = { p, cx: e.clientX, cy: e.clientY, t: performance.now(), id: e.pointerId };
    video.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  video.addEventListener('pointerup', (e) => {
    if (!press || e.pointerId !== press.id) return;
    const start = press; press = null;
    const dur = Math.min(Math.round(performance.now() - start.t), MAX_DURATION_MS);
    const moved = Math.hypot(e.clientX - start.cx, e.clientY - start.cy);
    if (moved < TAP_MAX_MOVE) {
      if (dur >= LONG_PRESS_MS) send({ type: 'input', action: 'long_press', x: start.p.x, y: start.p.y, duration_ms: dur });
      else send({ type: 'input', action: 'tap', x: start.p.x, y: start.p.y });
      return;
    }
    const end = toVideo(video, e.clientX, e.clientY, true);
    if (end) send({ type: 'input', action: 'swipe', x: start.p.x, y: start.p.y, x2: end.x, y2: end.y, duration_ms: Math.max(dur, 50) });
  });
  video.addEventListener('pointercancel', () => { press = null; });
  video.addEventListener('contextmenu', (e) => e.preventDefault());

  const MODIFIERS = ['Shift', 'Control', 'Alt', 'Meta', 'CapsLock', 'Unidentified', 'Dead'];
  const keyMsg = (e, phase) => ({ type: 'input', action: 'key', key: e.key.length === 1 ? e.key.toLowerCase() : e.key, phase,
    repeat: e.repeat ? 1 : 0, shift: e.shiftKey, ctrl: e.ctrlKey, alt: e.altKey, meta: e.metaKey });
  video.addEventListener('keydown', (e) => {
    if (state.role !== 'controller' || MODIFIERS.includes(e.key)) return;
    const shortcut = e.ctrlKey || e.metaKey || e.altKey;
    if (shortcut && (e.key === 'v' || e.key === 'V') && (e.ctrlKey || e.metaKey)) return; // paste: see below
    if (rich()) {
      // Keys with their meta state go down and up as the user presses
      // them; plain characters as text (any Unicode).
      if (shortcut || e.key.length !== 1) send(keyMsg(e, 'down'));
      else send({ type: 'input', action: 'text', text: e.key });
    } else if (shortcut) {
      if (e.key.length !== 1 && !/^[A-Za-z0-9]$/.test(e.key)) return;
      send(keyMsg(e, ''));
    } else if (e.key.length === 1) send({ type: 'input', action: 'text', text: e.key });
    else send({ type: 'input', action: 'key', key: e.key });
    e.preventDefault();
  });
  video.addEventListener('keyup', (e) => {
    if (!rich() || MODIFIERS.includes(e.key)) return;
    if (e.ctrlKey || e.metaKey || e.altKey || e.key.length !== 1) { send(keyMsg(e, 'up')); e.preventDefault(); }
  });
  // Paste on the picture: the page's clipboard text goes to the device's
  // clipboard and is pasted there (scrcpy), or typed (shell: ASCII only).
  video.addEventListener('paste', (e) => {
    if (state.role !== 'controller') return;
    const text = (e.clipboardData && e.clipboardData.getData('text/plain')) || '';
    if (!text) return;
    if (state.backend === 'scrcpy') send({ type: 'input', action: 'clipboard', text: text.slice(0, 200000), paste: true });
    else send({ type: 'input', action: 'text', text: text.slice(0, 300) });
    e.preventDefault();
  });

  // ---- screenshot, files ----
  $('#screenshot').addEventListener('click', async () => {
    if (!state.device) return;
    const headers = {};
    if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
    try {
      const res = await fetch(withToken('/api/v1/devices/' + encodeURIComponent(state.device) + '/screenshot'), { headers });
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error?.message || res.statusText);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(await res.blob());
      a.download = state.device.replace(/[^A-Za-z0-9._-]/g, '_') + '-' + new Date().toISOString().replace(/[:.]/g, '-') + '.png';
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) { show($('#player-msg'), 'Screenshot failed: ' + err.message); }
  });
  // ---- recordings: start/stop and the device's last few, to download ----
  const recPath = () => '/api/v1/devices/' + encodeURIComponent(state.device) + '/recordings';
  async function authedFetch(path, opts) {
    const headers = {};
    if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
    return fetch(withToken(path), Object.assign({ headers }, opts || {}));
  }
  async function loadRecordings() {
    if (!state.device) return;
    let res;
    try { res = await authedFetch(recPath()); } catch (_) { return; }
    if (!res.ok) { $('#rec').hidden = true; $('#recs').hidden = true; return; } // recordings off, or not ours to see
    const recs = ((await res.json()).recordings || []).slice(-5).reverse();
    state.recording = recs.some((r) => r.state === 'recording');
    const b = $('#rec');
    b.hidden = state.role !== 'controller';
    b.textContent = state.recording ? 'Stop recording' : 'Record';
    const ul = $('#rec-list');
    ul.replaceChildren();
    for (const r of recs) {
      const li = document.createElement('li');
      const label = new Date(r.started_at).toLocaleTimeString() + ' · ' + (r.duration_seconds || 0).toFixed(1) + ' s · ' +
        Math.round((r.bytes || 0) / 1024) + ' KiB' + (r.state === 'recording' ? ' · recording' : '');
      if (r.state === 'recording') { li.textContent = label; } else {
        const a = document.createElement('a');
        a.href = '#'; a.textContent = label; a.dataset.file = r.file_url; a.dataset.id = r.id;
        li.append(a);
      }
      ul.append(li);
    }
    $('#recs').hidden = recs.length === 0;
    $('#recs').querySelector('summary').textContent = 'Recordings (' + recs.length + ')';
  }
  $('#rec').addEventListener('click', async () => {
    const res = await authedFetch(recPath(), { method: state.recording ? 'DELETE' : 'POST' }).catch((err) => ({ ok: false, statusText: err.message, json: async () => ({}) }));
    if (!res.ok) show($('#player-msg'), 'Recording: ' + ((await res.json().catch(() => ({}))).error?.message || res.statusText));
    loadRecordings();
  });
  $('#rec-list').addEventListener('click', async (e) => {
    const a = e.target.closest('a[data-file]');
    if (!a) return;
    e.preventDefault();
    try {
      const res = await authedFetch(a.dataset.file);
      if (!res.ok) throw new Error(res.statusText);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(await res.blob());
      link.download = state.device.replace(/[^A-Za-z0-9._-]/g, '_') + '-' + a.dataset.id + '.mp4';
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (err) { show($('#player-msg'), 'Download failed: ' + err.message); }
  });

  // upload streams f to …/files (or …/apps for an .apk) with a progress bar.
  function upload(f) {
    if (!f || !state.device || state.role !== 'controller') return;
    const apk = /\.apk$/i.test(f.name);
    const path = '/api/v1/devices/' + encodeURIComponent(state.device) + (apk ? '/apps' : '/files?name=' + encodeURIComponent(f.name));
    const xhr = new XMLHttpRequest();
    const bar = $('#upload-progress');
    bar.hidden = false; bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onloadend = () => {
      bar.hidden = true;
      let body = {}; try { body = JSON.parse(xhr.responseText); } catch (_) { /* empty */ }
      if (xhr.status >= 200 && xhr.status < 300) show($('#player-msg'), apk ? f.name + ' installed' : f.name + ' → ' + body.path);
      else show($('#player-msg'), (apk ? 'Install' : 'Upload') + ' failed: ' + ((body.error && body.error.message) || xhr.statusText || 'network error'));
    };
    xhr.open('POST', withToken(path));
    if (apiKey()) xhr.setRequestHeader('Authorization', 'Bearer ' + apiKey());
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.send(f);
  }
  $('#upload').addEventListener('change', (e) => { upload(e.target.files[0]); e.target.value = ''; });
  video.addEventListener('dragover', (e) => { if (state.role === 'controller') e.preventDefault(); });
  video.addEventListener('drop', (e) => { e.preventDefault(); for (const f of e.dataTransfer.files) upload(f); });

  // ---- routing ----
  function route() {
    const params = new URLSearchParams(location.search);
    const dev = params.get('device');
    if (dev) {
      play(dev, params.get('role') === 'viewer' ? 'viewer' : 'controller');
    } else {
      stop(false);
      $('#player-view').hidden = true;
      $('#devices-view').hidden = false;
      loadDevices();
    }
  }
  window.addEventListener('popstate', route);
  window.addEventListener('pagehide', () => stop(true));
  route();
})();
