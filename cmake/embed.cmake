# Turns the dashboard's files into a C source of byte arrays, at build time
# (no xxd needed): cmake -DOUT=FILE.c -DFILES="a;b" -DBASE=DIR -P embed.cmake
#
# Each file becomes one entry of srv_ui_assets[] (server/ui.h): its name
# relative to BASE, its Content-Type (from the extension), its bytes, and
# an ETag made of the SHA-256 of the bytes.
cmake_minimum_required(VERSION 3.16)

set(body "/* Made by cmake/embed.cmake from server/ui/: do not edit. */\n")
string(APPEND body "#include \"ui.h\"\n\n")
set(table "")
set(i 0)
foreach(f ${FILES})
  file(RELATIVE_PATH name "${BASE}" "${f}")
  get_filename_component(ext "${f}" LAST_EXT)
  if(ext STREQUAL ".html")
    set(ctype "text/html; charset=utf-8")
  elseif(ext STREQUAL ".js")
    set(ctype "text/javascript; charset=utf-8")
  elseif(ext STREQUAL ".css")
    set(ctype "text/css; charset=utf-8")
  elseif(ext STREQUAL ".svg")
    set(ctype "image/svg+xml")
  else()
    message(FATAL_ERROR "embed.cmake: no Content-Type known for ${f}")
  endif()
  file(READ "${f}" hex HEX)
  file(SHA256 "${f}" sum)
  string(SUBSTRING "${sum}" 0 32 sum)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const unsigned char asset${i}[] = {\n\t${bytes}0};\n\n")
  string(APPEND table "\t{\"${name}\", \"${ctype}\", \"\\\"${sum}\\\"\", asset${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const struct srv_ui_asset srv_ui_assets[] = {\n${table}\t{0, 0, 0, 0, 0},\n};\n")

# rewrite only when it changed, so that nothing rebuilds for nothing
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${body}")
