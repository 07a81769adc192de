# Writes OUT (a .cpp) from TEMPLATE, each @NAME@ replaced by the bytes of one page file as a
# comma-separated list of hex bytes ending in 0. Run by add_custom_command at build time, so an
# edit of a page file rebuilds the binary.
#   cmake -DSRC=<page dir> -DTEMPLATE=<status_page.cpp.in> -DOUT=<file> -P embed_page.cmake
foreach(pair "INDEX_HTML:index.html" "APP_JS:app.js" "STYLE_CSS:style.css" "FAVICON_SVG:favicon.svg")
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 var)
  list(GET pair 1 file)
  file(READ "${SRC}/${file}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # Line breaks every 16 bytes keep the generated file readable by compilers and people alike.
  # (CMake's regular expressions have no {n}.)
  string(REPEAT "0x[0-9a-f][0-9a-f]," 16 sixteen)
  string(REGEX REPLACE "(${sixteen})" "\\1\n" bytes "${bytes}")
  set(${var} "${bytes}0")
endforeach()
configure_file("${TEMPLATE}" "${OUT}" @ONLY)
