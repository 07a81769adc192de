# `cmake --install` into a scratch prefix, then check that the layout packaging/CMakeLists.txt
# promises is there and that the installed binary runs from it (it finds its shared libraries
# without the build tree).
# usage: cmake -DBUILD_DIR=... -DSCRATCH=... -DVERSION=... -P check_install.cmake
foreach(var BUILD_DIR SCRATCH VERSION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_install: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${SCRATCH}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${SCRATCH}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${out}")
endif()

set(missing "")
foreach(f bin/cascade bin/cascade-sim lib/systemd/system/cascade@.service
    share/doc/cascade/examples/dunder-mifflin.yaml share/bash-completion/completions/cascade
    share/zsh/vendor-completions/_cascade)
  if(NOT EXISTS "${SCRATCH}/${f}")
    list(APPEND missing ${f})
  endif()
endforeach()
if(NOT IS_DIRECTORY "${SCRATCH}/etc/cascade")
  list(APPEND missing etc/cascade/)
endif()
if(missing)
  message(FATAL_ERROR "not installed under ${SCRATCH}: ${missing}")
endif()

execute_process(COMMAND "${SCRATCH}/bin/cascade" --version
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "cascade ${VERSION}")
  message(FATAL_ERROR "installed cascade --version: exit ${rc}, printed '${out}' (expected "
    "'cascade ${VERSION}')\n${err}")
endif()
execute_process(COMMAND "${SCRATCH}/bin/cascade" validate
  "${SCRATCH}/share/doc/cascade/examples/dunder-mifflin.yaml"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "installed cascade validate of the installed example: exit ${rc}\n${out}")
endif()

# The completion scripts at least load in their shells, where those shells are installed.
find_program(BASH bash)
if(BASH)
  execute_process(COMMAND ${BASH} --norc -c
    "source '${SCRATCH}/share/bash-completion/completions/cascade' && complete -p cascade"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "bash completion does not load: exit ${rc}\n${out}")
  endif()
endif()
find_program(ZSH zsh)
if(ZSH)
  execute_process(COMMAND ${ZSH} -n "${SCRATCH}/share/zsh/vendor-completions/_cascade"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "zsh completion does not parse: exit ${rc}\n${out}")
  endif()
endif()

file(REMOVE_RECURSE "${SCRATCH}")
message(STATUS "install layout under a scratch prefix: ok (cascade ${VERSION})")
