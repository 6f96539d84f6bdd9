// Kiln's UI script: live updates over Server-Sent Events, selection helpers, confirmations, the
// power-settings form and the image upload. Everything works without it; it only makes pages live.
(function () {
  "use strict";
  var body = document.body;
  var live = document.getElementById("live-state");
  function setLive(ok) {
    if (!live) return;
    live.textContent = ok ? "live" : "reconnecting…";
    live.className = ok ? "live ok" : "live down";
  }

  // Live: the server says "changed"; the page's live regions refetch themselves (htmx), at most
  // every 100 ms. After a reconnect (a new "hello"), everything is refetched: what was missed.
  var stream = body.dataset.stream;
  if (stream && window.EventSource) {
    var timer = null, seen = false;
    var changed = function () {
      if (timer) return;
      timer = setTimeout(function () {
        timer = null;
        if (window.htmx) htmx.trigger(body, "kiln:changed");
      }, 100);
    };
    var es = new EventSource(stream);
    es.addEventListener("hello", function () {
      setLive(true);
      if (seen) changed();
      seen = true;
    });
    es.addEventListener("changed", changed);
    es.onerror = function () { setLive(false); };
  }

  // A notice says what the last form did: once shown, drop it from the URL (a reload or a shared
  // link does not repeat it).
  if (window.history && /[?&]notice=/.test(location.search)) {
    var u = new URL(location.href);
    u.searchParams.delete("notice");
    history.replaceState(null, "", u.pathname + (u.search || "") + u.hash);
  }

  // Selection on the machine list: "select the page" and a count.
  function countSelected() {
    var out = document.getElementById("selected-count");
    if (!out) return;
    var all = document.getElementById("bulk-all");
    var n = document.querySelectorAll('input[name="ids"]:checked').length;
    out.textContent = all && all.checked ? "every match selected" : (n ? n + " selected" : "");
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.id === "select-page") {
      document.querySelectorAll('input[name="ids"]').forEach(function (b) { b.checked = t.checked; });
    }
    if (t.name === "ids" || t.id === "select-page" || t.id === "bulk-all") countSelected();
    if (t.dataset && t.dataset.shows) showPowerFields(t);
  });
  document.addEventListener("htmx:afterSwap", countSelected);

  // A machine's page: the deploy and release forms are not live regions (what is typed in them is
  // kept), but when the status changes which of them apply, they are fetched again.
  document.addEventListener("htmx:afterSwap", function () {
    var s = document.getElementById("m-summary"), f = document.getElementById("m-forms");
    if (s && f && window.htmx && s.dataset.forms !== f.dataset.forms) {
      f.dataset.forms = s.dataset.forms;
      htmx.ajax("GET", location.pathname, { target: "#m-forms", select: "#m-forms", swap: "outerHTML" });
    }
  });

  // Confirmations for destructive forms, and for bulk actions that change many machines.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) { e.preventDefault(); return; }
    if (f.id === "bulk") {
      var sel = f.elements.action, all = f.elements.all && f.elements.all.checked;
      var n = all ? "every machine that matches the search" : f.querySelectorAll('input[name="ids"]:checked').length + " machine(s)";
      var risky = ["delete", "release", "deploy", "abort", "mark-broken", "power-off"].indexOf(sel.value) >= 0;
      if ((risky || all) && !window.confirm(sel.options[sel.selectedIndex].text + ": " + n + "?")) e.preventDefault();
    }
  }, true);

  // Power settings: show only the chosen driver's fields.
  function showPowerFields(sel) {
    document.querySelectorAll("fieldset." + sel.dataset.shows).forEach(function (fs) {
      var on = fs.dataset.for === sel.value;
      fs.hidden = !on;
      fs.disabled = !on;
    });
  }
  var pt = document.getElementById("power_type");
  if (pt) showPowerFields(pt);

  // Upload: sha256 in the browser (streamed, in 4 MiB slices; crypto.subtle is missing outside
  // https and localhost), then a PUT with a progress bar, through the JSON API.
  var K = new Uint32Array([0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2]);
  function Sha256() {
    this.h = new Uint32Array([0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19]);
    this.buf = new Uint8Array(64); this.n = 0; this.len = 0; this.w = new Uint32Array(64);
  }
  Sha256.prototype.block = function (b, o) {
    var w = this.w, h = this.h, i, t1, t2;
    for (i = 0; i < 16; i++) w[i] = (b[o+4*i]<<24)|(b[o+4*i+1]<<16)|(b[o+4*i+2]<<8)|b[o+4*i+3];
    for (i = 16; i < 64; i++) {
      var x = w[i-15], y = w[i-2];
      var s0 = ((x>>>7)|(x<<25))^((x>>>18)|(x<<14))^(x>>>3);
      var s1 = ((y>>>17)|(y<<15))^((y>>>19)|(y<<13))^(y>>>10);
      w[i] = (w[i-16] + s0 + w[i-7] + s1) | 0;
    }
    var a=h[0],bb=h[1],c=h[2],d=h[3],e=h[4],f=h[5],g=h[6],hh=h[7];
    for (i = 0; i < 64; i++) {
      t1 = (hh + (((e>>>6)|(e<<26))^((e>>>11)|(e<<21))^((e>>>25)|(e<<7))) + ((e&f)^(~e&g)) + K[i] + w[i]) | 0;
      t2 = ((((a>>>2)|(a<<30))^((a>>>13)|(a<<19))^((a>>>22)|(a<<10))) + ((a&bb)^(a&c)^(bb&c))) | 0;
      hh=g; g=f; f=e; e=(d+t1)|0; d=c; c=bb; bb=a; a=(t1+t2)|0;
    }
    h[0]+=a; h[1]+=bb; h[2]+=c; h[3]+=d; h[4]+=e; h[5]+=f; h[6]+=g; h[7]+=hh;
  };
  Sha256.prototype.update = function (data) {
    var i = 0; this.len += data.length;
    if (this.n) { while (this.n < 64 && i < data.length) this.buf[this.n++] = data[i++]; if (this.n === 64) { this.block(this.buf, 0); this.n = 0; } }
    for (; i + 64 <= data.length; i += 64) this.block(data, i);
    while (i < data.length) this.buf[this.n++] = data[i++];
  };
  Sha256.prototype.hex = function () {
    var bits = this.len * 8, pad = new Uint8Array(((this.n < 56) ? 56 : 120) - this.n + 8);
    pad[0] = 0x80;
    var hi = Math.floor(bits / 0x100000000), lo = bits >>> 0, L = pad.length;
    pad[L-8]=hi>>>24; pad[L-7]=hi>>>16; pad[L-6]=hi>>>8; pad[L-5]=hi; pad[L-4]=lo>>>24; pad[L-3]=lo>>>16; pad[L-2]=lo>>>8; pad[L-1]=lo;
    this.update(pad);
    var s = ""; for (var i = 0; i < 8; i++) s += ("00000000" + this.h[i].toString(16)).slice(-8);
    return s;
  };
  window.kilnSha256 = Sha256;

  var up = document.querySelector("form[data-upload]");
  if (up) up.addEventListener("submit", async function (e) {
    e.preventDefault();
    var st = document.getElementById("u-status"), bar = document.getElementById("u-progress");
    var file = up.elements.file.files[0];
    if (!file) { st.textContent = "Choose a file."; return; }
    var csrf = (JSON.parse(body.getAttribute("hx-headers") || "{}"))["X-CSRF-Token"] || "";
    var headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    bar.hidden = false; bar.value = 0;
    try {
      st.textContent = "Computing the sha256…";
      var h = new Sha256(), step = 4 << 20;
      for (var off = 0; off < file.size; off += step) {
        h.update(new Uint8Array(await file.slice(off, off + step).arrayBuffer()));
        bar.value = Math.round(50 * Math.min(1, (off + step) / file.size));
      }
      var sha = h.hex();
      var spec = { os: up.elements.os.value, release: up.elements.release.value, arch: up.elements.arch.value, kind: up.elements.kind.value };
      var r = await fetch("/api/v1/boot-resources", { method: "POST", headers: headers, body: JSON.stringify(spec) });
      var res;
      if (r.status === 409) {
        var all = await (await fetch("/api/v1/boot-resources")).json();
        res = all.find(function (x) { return x.os === spec.os && x.release === spec.release && x.arch === spec.arch && x.kind === spec.kind; });
      } else if (r.ok) { res = await r.json(); }
      else { throw new Error((await r.json()).message); }
      if (!res) throw new Error("The image exists but could not be found again; reload the page.");
      st.textContent = "Uploading " + file.name + "…";
      await new Promise(function (ok, fail) {
        var x = new XMLHttpRequest();
        x.open("PUT", "/api/v1/boot-resources/" + encodeURIComponent(res.id) + "/files/" + encodeURIComponent(file.name) + "?sha256=" + sha + "&size=" + file.size);
        x.setRequestHeader("Content-Type", "application/octet-stream");
        x.setRequestHeader("X-CSRF-Token", csrf);
        x.upload.onprogress = function (ev) { if (ev.lengthComputable) bar.value = 50 + Math.round(50 * ev.loaded / ev.total); };
        x.onload = function () {
          if (x.status >= 200 && x.status < 300) ok();
          else { try { fail(new Error(JSON.parse(x.responseText).message)); } catch (_) { fail(new Error("HTTP " + x.status)); } }
        };
        x.onerror = function () { fail(new Error("The connection broke; nothing was stored.")); };
        x.send(file);
      });
      bar.value = 100;
      st.textContent = file.name + " uploaded and verified (sha256 " + sha.slice(0, 12) + "…).";
      setTimeout(function () { location.reload(); }, 800);
    } catch (err) {
      st.textContent = "Upload failed: " + err.message;
      st.className = "error";
    }
  });
})();
