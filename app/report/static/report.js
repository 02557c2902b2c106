/* temporal-siem report: the client-side alerts table. Data is embedded (gzip + base64) in #report-data;
   everything from logs is set with textContent, never parsed as HTML. */
(function () {
  'use strict';
  var PAGE_SIZE = 50;
  var status = document.getElementById('alerts-status');
  var tbody = document.querySelector('#alerts-table tbody');
  var ruleSelect = document.getElementById('filter-rule');
  var levelSelect = document.getElementById('filter-level');
  var typeSelect = document.getElementById('filter-type');
  var entityInput = document.getElementById('filter-entity');
  var orderSelect = document.getElementById('sort-order');
  var pageInfo = document.getElementById('page-info');
  var prev = document.getElementById('page-prev');
  var next = document.getElementById('page-next');
  var detail = document.getElementById('alert-detail');
  var timeChip = document.getElementById('filter-time');
  var data = null, order = null, filtered = [], page = 0, entityText = [], times = [], timeRange = null;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function decode() {
    var b64 = document.getElementById('report-data').textContent.trim();
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (typeof DecompressionStream === 'undefined') {
      return Promise.reject(new Error('this browser has no DecompressionStream; open the report in a current browser'));
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).text().then(JSON.parse);
  }

  function entityLabel(pair) { return data.kinds[pair[0]] + ': ' + pair[1]; }

  function setup() {
    var a = data.a, n = a.t.length;
    var counts = new Array(data.rules.length).fill(0);
    for (var i = 0; i < n; i++) {
      counts[a.r[i]]++;
      var parts = [];
      for (var j = 0; j < a.e[i].length; j++) parts.push(String(a.e[i][j][1]).toLowerCase());
      entityText.push(parts);
    }
    var ruleOrder = data.rules.map(function (_, i) { return i; });
    ruleOrder.sort(function (x, y) { return data.rules[x][1] < data.rules[y][1] ? -1 : data.rules[x][1] > data.rules[y][1] ? 1 : 0; });
    ruleOrder.forEach(function (i) {
      var opt = el('option', data.rules[i][1] + ' (' + counts[i] + ')');
      opt.value = String(i);
      opt.dataset.ruleId = data.rules[i][0];
      ruleSelect.appendChild(opt);
    });
    var levelCounts = new Array(data.levels.length).fill(0);
    for (var k = 0; k < n; k++) levelCounts[a.l[k]]++;
    data.levels.forEach(function (name, i) {
      if (!levelCounts[i]) return;
      var opt = el('option', name + ' (' + levelCounts[i] + ')');
      opt.value = String(i);
      levelSelect.appendChild(opt);
    });
    for (var q = 0; q < n; q++) { var ms = Date.parse(a.t[q]); times.push(isNaN(ms) ? null : ms / 1000); }
    order = [];
    for (var m = 0; m < n; m++) order.push(m);
    order.sort(function (x, y) { return a.t[x] < a.t[y] ? -1 : a.t[x] > a.t[y] ? 1 : x - y; });
  }

  function apply() {
    var a = data.a;
    var rule = ruleSelect.value === '' ? -1 : Number(ruleSelect.value);
    var level = levelSelect.value === '' ? -1 : Number(levelSelect.value);
    var type = typeSelect.value === '' ? -1 : Number(typeSelect.value);
    var needle = entityInput.value.trim().toLowerCase();
    var source = orderSelect.value === 'desc' ? order.slice().reverse() : order;
    filtered = [];
    for (var i = 0; i < source.length; i++) {
      var x = source[i];
      if (rule >= 0 && a.r[x] !== rule) continue;
      if (level >= 0 && a.l[x] !== level) continue;
      if (type >= 0 && a.c[x] !== type) continue;
      if (timeRange && (times[x] === null || times[x] < timeRange[0] || times[x] >= timeRange[1])) continue;
      if (needle) {
        var hit = false, values = entityText[x];
        for (var j = 0; j < values.length && !hit; j++) hit = values[j].indexOf(needle) !== -1;
        if (!hit) continue;
      }
      filtered.push(x);
    }
    page = 0;
    draw();
  }

  function draw() {
    var a = data.a;
    var pages = Math.max(1, Math.ceil(filtered.length / PAGE_SIZE));
    if (page >= pages) page = pages - 1;
    var start = page * PAGE_SIZE, end = Math.min(filtered.length, start + PAGE_SIZE);
    var frag = document.createDocumentFragment();
    for (var i = start; i < end; i++) {
      var x = filtered[i];
      var tr = document.createElement('tr');
      tr.dataset.index = String(x);
      tr.tabIndex = 0;
      tr.appendChild(el('td', a.t[x]));
      var lvl = el('td');
      lvl.appendChild(el('span', data.levels[a.l[x]], 'badge lvl-' + data.levels[a.l[x]]));
      tr.appendChild(lvl);
      tr.appendChild(el('td', data.rules[a.r[x]][1]));
      tr.appendChild(el('td', a.c[x] ? 'correlation' : 'rule'));
      tr.appendChild(el('td', a.ac ? a.ac[x] : ''));
      tr.appendChild(el('td', a.o ? a.o[x] : ''));
      tr.appendChild(el('td', a.ns ? a.ns[x] : ''));
      tr.appendChild(el('td', a.e[x].map(entityLabel).join(' · ')));
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    status.textContent = filtered.length === 0 ? 'No alert matches the filters (' + a.t.length + ' alerts in all).'
      : 'Showing ' + (start + 1) + '–' + end + ' of ' + filtered.length + ' alerts' +
        (filtered.length !== a.t.length ? ' (filtered from ' + a.t.length + ')' : '') + '.';
    status.dataset.matching = String(filtered.length);
    pageInfo.textContent = 'page ' + (page + 1) + ' of ' + pages;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  function kvTable(pairs) {
    var table = el('table', null, 'compact');
    var body = document.createElement('tbody');
    pairs.forEach(function (p) {
      var tr = document.createElement('tr');
      tr.appendChild(el('th', p[0]));
      tr.appendChild(el('td', typeof p[1] === 'object' ? JSON.stringify(p[1]) : p[1]));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  var alertIds = null;
  function alertIndex() {
    if (alertIds === null) {
      alertIds = Object.create(null);
      for (var i = 0; i < data.a.id.length; i++) alertIds[data.a.id[i]] = i;
    }
    return alertIds;
  }

  function eventAt(index) {
    var row = data.evs[index], keys = data.shapes[row[0]], event = {};
    for (var i = 0; i < keys.length; i++) event[keys[i]] = data.vals[row[i + 1]];
    return event;
  }

  function eventBlock(index) {
    return el('pre', JSON.stringify(eventAt(index), null, 2));
  }

  function show(x) {
    var a = data.a;
    detail.replaceChildren();
    detail.hidden = false;
    detail.appendChild(el('h3', data.rules[a.r[x]][1]));
    var pairs = [['alert.id', a.id[x]], ['@timestamp', a.t[x]], ['rule.id', data.rules[a.r[x]][0]], ['level', data.levels[a.l[x]]],
      ['type', a.c[x] ? 'correlation' : 'rule']];
    if (data.rules[a.r[x]][2]) pairs.push(['description', data.rules[a.r[x]][2]]);
    if (a.ac && a.ac[x]) pairs.push(['event.action', a.ac[x]]);
    if (a.o && a.o[x]) pairs.push(['event.outcome', a.o[x]]);
    if (a.ns && a.ns[x]) pairs.push(['temporal.namespace', a.ns[x]]);
    a.e[x].forEach(function (p) { pairs.push(['entity ' + data.kinds[p[0]], p[1]]); });
    var meta = a.m[x];
    if (meta) {
      if (meta.ct !== undefined) pairs.push(['correlation type', meta.ct]);
      if (meta.g !== undefined) pairs.push(['group by', meta.g]);
      if (meta.w !== undefined) pairs.push(['window', meta.w]);
      if (meta.v !== undefined) pairs.push(['value', meta.v]);
      if (meta.rr !== undefined) pairs.push(['rules', meta.rr]);
      pairs.push(['contributing events', meta.n]);
    }
    detail.appendChild(kvTable(pairs));
    if (a.ev[x] >= 0) {
      detail.appendChild(el('h3', 'Normalized event'));
      detail.appendChild(eventBlock(a.ev[x]));
    } else if (!meta) {
      detail.appendChild(el('p', 'The event is not embedded (the report caps embedded events at ' + data.caps.max_events + ').', 'muted'));
    }
    if (meta) {
      var kept = meta.src.filter(function (s) { return typeof s === 'number' && s >= 0; }).length;
      detail.appendChild(el('h3', 'Contributing events (' + kept + ' of ' + meta.n + ' retained)'));
      meta.src.forEach(function (s) {
        if (typeof s === 'number' && s >= 0) {
          var box = document.createElement('details');
          var ev = eventAt(s);
          box.appendChild(el('summary', String(ev['@timestamp'] || '') + '  ' + String(ev['event.action'] || '') + '  ' + String(ev['event.id'] || '')));
          box.appendChild(eventBlock(s));
          detail.appendChild(box);
        } else {
          var other = alertIndex()[String(s)];
          detail.appendChild(el('div', String(s) + (other === undefined ? ' (not retained by the replay)'
            : ' (the alert \u201c' + data.rules[data.a.r[other]][1] + '\u201d, a referenced correlation)'), 'muted small'));
        }
      });
    }
    detail.scrollIntoView({ block: 'nearest' });
  }

  function wire() {
    [ruleSelect, levelSelect, typeSelect, orderSelect].forEach(function (s) { s.addEventListener('change', apply); });
    var timer = null;
    entityInput.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(apply, 120); });
    prev.addEventListener('click', function () { if (page > 0) { page--; draw(); } });
    next.addEventListener('click', function () { page++; draw(); });
    document.getElementById('filter-clear').addEventListener('click', function () {
      ruleSelect.value = ''; levelSelect.value = ''; typeSelect.value = ''; entityInput.value = ''; setTimeRange(null); apply();
    });
    document.getElementById('export-csv').addEventListener('click', function () { download('alerts.csv', 'text/csv', toCsv()); });
    document.getElementById('export-json').addEventListener('click', function () { download('alerts.json', 'application/json', toJson()); });
    wireBrush();
    function select(tr) {
      tbody.querySelectorAll('tr.selected').forEach(function (r) { r.classList.remove('selected'); });
      tr.classList.add('selected');
      show(Number(tr.dataset.index));
    }
    tbody.addEventListener('click', function (ev) {
      var tr = ev.target.closest('tr');
      if (tr) select(tr);
    });
    tbody.addEventListener('keydown', function (ev) {
      var tr = ev.target.closest('tr');
      if (tr && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); select(tr); }
    });
    document.querySelectorAll('a.entity-link').forEach(function (link) {
      link.addEventListener('click', function () { entityInput.value = link.dataset.entity; apply(); });
    });
    document.querySelectorAll('a.rule-link').forEach(function (link) {
      link.addEventListener('click', function () {
        var opts = ruleSelect.options;
        for (var i = 0; i < opts.length; i++) if (opts[i].dataset.ruleId === link.dataset.rule) ruleSelect.value = opts[i].value;
        apply();
      });
    });
  }

  // ---- export of the filtered rows ------------------------------------------------------------------
  function rowObject(x) {
    var a = data.a;
    return { '@timestamp': a.t[x], 'alert.id': a.id[x], 'level': data.levels[a.l[x]], 'rule.id': data.rules[a.r[x]][0],
      'rule.name': data.rules[a.r[x]][1], 'type': a.c[x] ? 'correlation' : 'rule', 'event.action': a.ac ? a.ac[x] : '',
      'event.outcome': a.o ? a.o[x] : '', 'temporal.namespace': a.ns ? a.ns[x] : '', 'entities': a.e[x].map(entityLabel).join(' | ') };
  }
  var COLUMNS = ['@timestamp', 'alert.id', 'level', 'rule.id', 'rule.name', 'type', 'event.action', 'event.outcome', 'temporal.namespace', 'entities'];
  function csvCell(value) {
    var s = String(value === undefined || value === null ? '' : value);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;  // no formula injection when opened in a spreadsheet
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function toCsv() {
    var lines = [COLUMNS.join(',')];
    filtered.forEach(function (x) { var o = rowObject(x); lines.push(COLUMNS.map(function (c) { return csvCell(o[c]); }).join(',')); });
    return lines.join('\r\n') + '\r\n';
  }
  function toJson() { return JSON.stringify(filtered.map(rowObject), null, 1); }
  function download(name, type, body) {
    var url = URL.createObjectURL(new Blob([body], { type: type }));
    var link = document.createElement('a');
    link.href = url; link.download = name;
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    document.body.dataset.lastExport = name;
    document.body.dataset.lastExportRows = String(filtered.length);
  }

  // ---- brushing the timeline narrows the table to a time range ---------------------------------------
  function setTimeRange(range) {
    timeRange = range;
    var brush = document.getElementById('timeline-brush');
    if (!range) {
      timeChip.hidden = true;
      if (brush) brush.setAttribute('width', '0');
      return;
    }
    timeChip.hidden = false;
    timeChip.textContent = 'time ' + new Date(range[0] * 1000).toISOString().replace('.000', '') + ' \u2192 ' +
      new Date(range[1] * 1000).toISOString().replace('.000', '');
  }
  function wireBrush() {
    var svg = document.getElementById('timeline-chart');
    var brush = document.getElementById('timeline-brush');
    if (!svg || !brush) return;
    var start = Number(svg.dataset.start), step = Number(svg.dataset.step), buckets = Number(svg.dataset.buckets);
    var left = Number(svg.dataset.left), plotW = Number(svg.dataset.plotWidth), width = Number(svg.dataset.width);
    function toX(ev) {
      var box = svg.getBoundingClientRect();
      var x = (ev.clientX - box.left) / box.width * width;
      return Math.min(left + plotW, Math.max(left, x));
    }
    var from = null;
    svg.addEventListener('mousedown', function (ev) { from = toX(ev); brush.setAttribute('x', String(from)); brush.setAttribute('width', '0'); ev.preventDefault(); });
    svg.addEventListener('mousemove', function (ev) {
      if (from === null) return;
      var to = toX(ev);
      brush.setAttribute('x', String(Math.min(from, to)));
      brush.setAttribute('width', String(Math.abs(to - from)));
    });
    function finish(ev) {
      if (from === null) return;
      var to = toX(ev), lo = Math.min(from, to), hi = Math.max(from, to);
      from = null;
      if (hi - lo < 2) { setTimeRange(null); apply(); return; }
      // Whole buckets: what the bars under the brush show is what the table lists.
      var first = Math.floor((lo - left) / plotW * buckets), last = Math.ceil((hi - left) / plotW * buckets);
      setTimeRange([start + first * step, start + last * step]);
      apply();
      document.getElementById('alerts').scrollIntoView({ block: 'start' });
    }
    svg.addEventListener('mouseup', finish);
    svg.addEventListener('mouseleave', function (ev) { if (from !== null) finish(ev); });
  }

  decode().then(function (decoded) {
    data = decoded;
    setup();
    wire();
    apply();
    document.body.dataset.reportReady = '1';
  }).catch(function (err) {
    status.textContent = 'The alerts table could not be loaded: ' + err.message;
    document.body.dataset.reportReady = 'error';
  });
})();
