// The dashboard's only script: live refresh of server-rendered parts, the
// event stream, log and build-log follows, client-side filters, countdowns
// and the theme toggle. Pages work without it (forms post, links load);
// it never builds HTML from data: it swaps in HTML the server rendered
// (and escaped), or sets textContent.
(function () {
  'use strict';

  var root = document.documentElement;

  // ---- theme ----
  var toggle = document.getElementById('theme-toggle');
  function theme() {
    var t = root.getAttribute('data-theme');
    if (t) { return t; }
    return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }
  function showTheme() {
    if (!toggle) { return; }
    var dark = theme() === 'dark';
    toggle.setAttribute('aria-pressed', dark ? 'true' : 'false');
    toggle.textContent = dark ? 'Light theme' : 'Dark theme';
  }
  if (toggle) {
    toggle.addEventListener('click', function () {
      var next = theme() === 'dark' ? 'light' : 'dark';
      root.setAttribute('data-theme', next);
      try { localStorage.setItem('hershy-theme', next); } catch (e) { /* ignore */ }
      showTheme();
    });
    showTheme();
  }

  // ---- countdowns: "next restart in N s" ----
  function countdowns() {
    var now = Date.now();
    document.querySelectorAll('[data-deadline]').forEach(function (el) {
      var t = Date.parse(el.getAttribute('data-deadline'));
      if (isNaN(t)) { return; }
      el.textContent = 'in ' + Math.max(0, Math.ceil((t - now) / 1000)) + ' s';
    });
  }
  countdowns();
  setInterval(countdowns, 1000);

  // ---- filters ----
  function filterRows() {
    var q = document.querySelector('[data-filter-rows]');
    var st = document.querySelector('[data-filter-state]');
    var table = document.querySelector((q && q.getAttribute('data-filter-rows')) || '#programs');
    if (!table) { return; }
    var text = q ? q.value.trim().toLowerCase() : '';
    var state = st ? st.value : '';
    var shown = 0;
    table.querySelectorAll('tbody tr').forEach(function (tr) {
      var ok = (!text || (tr.getAttribute('data-search') || '').indexOf(text) >= 0) &&
        (!state || tr.getAttribute('data-state') === state);
      tr.hidden = !ok;
      if (ok) { shown++; }
    });
    var count = document.getElementById('shown-count');
    if (count && (text || state)) { count.textContent = shown + ' shown.'; }
  }
  document.querySelectorAll('[data-filter-rows],[data-filter-state]').forEach(function (el) {
    el.addEventListener('input', filterRows);
    el.addEventListener('change', filterRows);
  });

  function filterLines() {
    var q = document.querySelector('[data-filter-lines]');
    if (!q) { return; }
    var list = document.querySelector(q.getAttribute('data-filter-lines'));
    var text = q.value.toLowerCase();
    list.querySelectorAll('li').forEach(function (li) {
      li.hidden = text !== '' && li.textContent.toLowerCase().indexOf(text) < 0;
    });
  }
  document.querySelectorAll('[data-filter-lines]').forEach(function (el) {
    el.addEventListener('input', filterLines);
  });

  // ---- live parts: re-fetch server-rendered HTML ----
  var parts = Array.prototype.slice.call(document.querySelectorAll('[data-part]'));
  function refresh(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) {
      return; // never pull the rug from under the keyboard
    }
    var url = new URL(window.location.href);
    url.searchParams.set('part', el.getAttribute('data-part'));
    url.hash = '';
    return fetch(url.toString(), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) {
          window.location.assign('/ui/signin'); // the session ended
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        el.innerHTML = html; // our own server's escaped rendering
        filterRows();
        countdowns();
      })
      .catch(function () { /* offline for a moment: the next tick retries */ });
  }
  parts.forEach(function (el) {
    var every = parseInt(el.getAttribute('data-every') || '0', 10);
    if (every > 0) {
      setInterval(function () { if (!document.hidden) { refresh(el); } }, every);
    }
  });
  var pending = null;
  var polling = null;
  function refreshOnEvent() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      parts.forEach(function (el) {
        if (el.hasAttribute('data-on-event')) { refresh(el); }
      });
    }, 1000); // a burst of changes (a thousand programs starting) is one refresh a second
  }

  // ---- the build page ----
  var build = document.getElementById('build');
  var progress = document.getElementById('build-progress');
  function onProgram(p) {
    if (!build || p.program_id !== build.getAttribute('data-program')) { return; }
    if (p.state === 'Ready') {
      var land = build.getAttribute('data-land');
      if (!land) { progress.textContent = 'Built and running.'; return; }
      progress.textContent = 'Ready. Opening the program…';
      window.location.assign(land);
    } else if (p.state === 'Error') {
      progress.textContent = 'The build or start failed: ' + (p.error_msg || 'see the log below') ;
    } else if (p.state === 'Starting') {
      progress.textContent = 'Built; starting the program…';
    } else if (p.state === 'Building') {
      progress.textContent = p.queue_position > 1 ? 'Waiting for a build slot (' + (p.queue_position - 1) + ' ahead)…' : 'Building…';
    }
  }
  function followBuildLog() {
    var pre = document.getElementById('build-log');
    if (!build || !pre || !window.ReadableStream) { return; }
    // The server waits for a build that has not begun its log yet.
    var src = build.getAttribute('data-build-log');
    fetch(src, { credentials: 'same-origin' }).then(function (r) {
      if (r.status !== 200 || !r.body) { return; }
      var empty = document.getElementById('build-empty');
      if (empty) { empty.hidden = true; }
      pre.textContent = '';
      var reader = r.body.getReader();
      var dec = new TextDecoder();
      function pump() {
        return reader.read().then(function (x) {
          if (x.done) { return; }
          pre.textContent += dec.decode(x.value, { stream: true });
          pre.scrollTop = pre.scrollHeight;
          return pump();
        });
      }
      return pump();
    }).catch(function () { /* the page still shows the log read at load */ });
  }
  followBuildLog();

  // ---- the event stream ----
  var evSrc = document.querySelector('[data-events]');
  if (evSrc && window.EventSource) {
    var es = new EventSource(evSrc.getAttribute('data-events'));
    var synced = false;
    // A change between the page's rendering and the stream's start shows
    // only in the snapshot: refresh once when it is complete.
    es.addEventListener('synced', function () { synced = true; refreshOnEvent(); });
    es.addEventListener('program', function (e) {
      var p = null;
      try { p = JSON.parse(e.data); } catch (err) { return; }
      onProgram(p);
      if (synced) { refreshOnEvent(); }
    });
    es.addEventListener('deleted', function () { refreshOnEvent(); });
    // Stats events are not followed here: a list of many programs would
    // refresh for every sample; the charts refresh on their own timer.
    es.addEventListener('build', function (e) {
      var b = null;
      try { b = JSON.parse(e.data); } catch (err) { return; }
      if (progress && build && b.program_id === build.getAttribute('data-program')) {
        progress.textContent = b.done ? 'Compiled ' + b.packages + ' package(s); making the image…' :
          'Building: ' + b.packages + ' package(s) compiled, ' + Math.round(b.elapsed_ms / 1000) + ' s';
      }
    });
    es.addEventListener('overflow', function () { es.close(); window.location.reload(); });
    // A stream the server refused (say, too many open at once) is not
    // retried by the browser: poll instead, more slowly.
    es.addEventListener('error', function () {
      if (es.readyState === EventSource.CLOSED && !polling) {
        polling = setInterval(function () {
          if (!document.hidden) {
            parts.forEach(function (el) { if (el.hasAttribute('data-on-event')) { refresh(el); } });
          }
        }, 5000);
      }
    });
    window.addEventListener('pagehide', function () { es.close(); });
  }

  // ---- log follow ----
  var follow = document.getElementById('follow');
  if (follow && window.EventSource) {
    var logs = document.getElementById('log-lines');
    var status = document.getElementById('follow-status');
    var stream = null;
    follow.addEventListener('click', function () {
      if (stream) {
        stream.close();
        stream = null;
        follow.setAttribute('aria-pressed', 'false');
        follow.textContent = 'Follow';
        status.textContent = 'Stopped following.';
        return;
      }
      stream = new EventSource(follow.getAttribute('data-src'));
      follow.setAttribute('aria-pressed', 'true');
      follow.textContent = 'Stop following';
      status.textContent = 'Following: new lines appear below.';
      var empty = document.getElementById('log-empty');
      stream.onmessage = function (e) {
        if (empty) { empty.hidden = true; }
        var li = document.createElement('li');
        li.textContent = e.data;
        logs.appendChild(li);
        filterLines();
        li.scrollIntoView({ block: 'nearest' });
      };
      stream.onerror = function () {
        status.textContent = 'The log stream was interrupted; reconnecting…';
      };
    });
    window.addEventListener('pagehide', function () { if (stream) { stream.close(); } });
  }
})();
