# ctest consumer_find_package (cmake -P): install the mlm build tree MLM_BINARY_DIR into a scratch
# prefix under WORK_DIR, then configure, build and run the separate project CONSUMER_SOURCE_DIR
# against that prefix with find_package(mlm). Fails on the first step that fails.
foreach(var MLM_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR BUILD_TYPE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: pass -D${var}=...")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run what)
  message(STATUS "consumer_find_package: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_find_package: ${what} failed (${rc})")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("install into ${prefix}"
    ${CMAKE_COMMAND} --install ${MLM_BINARY_DIR} --prefix ${prefix} --config ${BUILD_TYPE})

set(configure_args -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
    -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(CXX_COMPILER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
run("configure the consumer" ${CMAKE_COMMAND} ${configure_args})

# It must have found the scratch install, not some other mlm on the system.
file(REAL_PATH ${prefix} real_prefix)
string(FIND "${last_output}" "from ${real_prefix}/" at)
if(at EQUAL -1)
  string(FIND "${last_output}" "from ${prefix}/" at)
endif()
if(at EQUAL -1)
  message(FATAL_ERROR "consumer_find_package: find_package(mlm) did not use ${prefix}")
endif()
if(DEFINED EXPECT_OPENMP)
  if(EXPECT_OPENMP)
    set(want "OpenMP: ON")
  else()
    set(want "OpenMP: OFF")
  endif()
  string(FIND "${last_output}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "consumer_find_package: the installed mlmConfig.cmake does not say ${want}")
  endif()
endif()

run("build the consumer" ${CMAKE_COMMAND} --build ${build} --config ${BUILD_TYPE})
# Warnings in the consumer's build (from the installed headers or the exported flags) fail the
# test: a user's -Wall build should be quiet.
string(FIND "${last_output}" "warning:" at)
if(NOT at EQUAL -1)
  message(FATAL_ERROR "consumer_find_package: the consumer build printed warnings")
endif()

find_program(consumer_exe NAMES consumer PATHS ${build} ${build}/${BUILD_TYPE} NO_DEFAULT_PATH REQUIRED)
run("run the consumer" ${consumer_exe})
message(STATUS "consumer_find_package: passed")
