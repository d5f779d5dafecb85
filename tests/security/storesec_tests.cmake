# tests/security/ attacks on the store, gc, builds and --init (issue 13):
# each performs the attack and must see it fail. Exit 77 means skipped.
function(strata_security name probe)
  add_test(NAME security.${name}
           COMMAND ${STRATA_PROBE} ${probe} bash ${CMAKE_CURRENT_SOURCE_DIR}/security/${name}.sh)
  set_tests_properties(security.${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "STRATA=$<TARGET_FILE:strata>" LABELS "security;root")
endfunction()
strata_security(store_perms root)
strata_security(store_cache_mount overlay)
strata_security(store_mount_nosuid overlay)
strata_security(init_docker_init overlay)
strata_security(build_entitlements overlay)
strata_security(build_git_scrub overlay)
strata_security(gc_leases overlay)
