// lexigram dashboard: the live parts of a page. An element with
// data-live names the page's event stream (/ui/live, one per tab); each
// event names the element to update on its first data line and carries
// the HTML after it ("replace": the element's new content, "append":
// added at its end).
//
// A replace morphs the element's content in place rather than swapping
// it: elements that are still there (same tag and key: id, else
// data-key) keep their identity, only their changed text and attributes
// change. A button the operator is about to press, a link with focus,
// a selection, stay as they are while the numbers around them move.
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.EventSource) {
    return;
  }

  function key(n) {
    return n.nodeType === 1 ? n.id || n.getAttribute("data-key") || "" : "";
  }

  // same says whether the live node a can be updated into b.
  function same(a, b) {
    return a.nodeType === b.nodeType && a.nodeName === b.nodeName && key(a) === key(b);
  }

  function syncAttributes(a, b) {
    var i, name;
    for (i = a.attributes.length - 1; i >= 0; i--) {
      name = a.attributes[i].name;
      if (!b.hasAttribute(name)) {
        a.removeAttribute(name);
      }
    }
    for (i = 0; i < b.attributes.length; i++) {
      name = b.attributes[i].name;
      if (a.getAttribute(name) !== b.attributes[i].value) {
        a.setAttribute(name, b.attributes[i].value);
      }
    }
  }

  // morph makes the children of the live element from match those of
  // to, which it consumes.
  function morph(from, to) {
    var a = from.firstChild;
    var b = to.firstChild;
    while (b) {
      var nextB = b.nextSibling;
      if (a && !same(a, b) && key(b) !== "") {
        // A keyed node further on (rows before it went): drop those.
        var m = a.nextSibling;
        while (m && !same(m, b)) {
          m = m.nextSibling;
        }
        while (m && a !== m) {
          var gone = a;
          a = a.nextSibling;
          from.removeChild(gone);
        }
      }
      if (!a) {
        from.appendChild(b);
      } else if (same(a, b)) {
        if (a.nodeType === 1) {
          syncAttributes(a, b);
          morph(a, b);
        } else if (a.nodeValue !== b.nodeValue) {
          a.nodeValue = b.nodeValue;
        }
        a = a.nextSibling;
      } else {
        from.insertBefore(b, a);
      }
      b = nextB;
    }
    while (a) {
      var rest = a;
      a = a.nextSibling;
      from.removeChild(rest);
    }
  }

  var updates = 0;
  var source = new EventSource(root.getAttribute("data-live"));
  function apply(op, ev) {
    var data = ev.data;
    var nl = data.indexOf("\n");
    var target = nl < 0 ? data : data.slice(0, nl);
    var html = nl < 0 ? "" : data.slice(nl + 1);
    var el = document.getElementById(target);
    if (!el) {
      return;
    }
    if (op === "append") {
      el.insertAdjacentHTML("beforeend", html);
    } else {
      var focused = document.activeElement;
      var keep = focused && el.contains(focused) && focused.id ? focused.id : "";
      var next = document.createElement("template");
      next.innerHTML = html;
      morph(el, next.content);
      // A focused element that went (a pause button now resume) hands
      // its focus to the one with its id, if any.
      if (keep && document.activeElement !== focused && document.getElementById(keep)) {
        document.getElementById(keep).focus();
      }
    }
    updates++;
    document.body.setAttribute("data-live-updates", String(updates));
  }
  source.addEventListener("replace", function (ev) { apply("replace", ev); });
  source.addEventListener("append", function (ev) { apply("append", ev); });
  source.addEventListener("open", function () { document.body.setAttribute("data-live-open", "yes"); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
