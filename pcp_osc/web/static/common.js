// Shared by the dashboard and the camera page: the control token and API calls.
"use strict";
// EMOTIONS (names, in order) comes from /emotions.js, written by the server from pcp_osc/emotions.py.

const PCP = (() => {
  // The token arrives once in the address printed at start-up (?token=...) and is
  // kept for this tab only, then removed from the address bar.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("pcp-token", params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  const token = sessionStorage.getItem("pcp-token") || "";
  const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
  const headers = (extra) => Object.assign(token ? { "X-PCP-Token": token } : {}, extra || {});
  return { token, withToken, headers, params };
})();
