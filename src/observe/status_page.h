// The live status page of `cascade run`: the files of src/observe/page/, embedded in the binary
// at build time so the page works offline (no CDN, no file on disk).
//
// Contract. status_page() returns the page for StatusContent::page and the assets for
// StatusContent::assets ("app.js", "style.css", "favicon.svg"), byte for byte as in the source
// tree, each asset with its content type. The page fetches only `/status` and `/assets/NAME` of the
// address it was served from, every ~2 s, and renders data only as text (vendor data is untrusted).
// Browsers send no Authorization header for it, so on a non-loopback address that requires a token
// the page cannot load: reach it over loopback or an SSH tunnel. Thread-safe (returns a copy).
#pragma once

#include <map>
#include <string>

#include "observe/status_server.h"

namespace cascade::observe {

struct StatusPage {
  std::string page;
  std::map<std::string, StatusAsset> assets;
};

StatusPage status_page();

}  // namespace cascade::observe
