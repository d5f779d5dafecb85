// What `strata network` does, shared with the API's /networks
// (cli/serve/networks.cpp): the documents, the selections and the
// connections of containers, with Docker's messages.
#pragma once

#include "network/store.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace strata::cli {

// `network inspect`'s document: the record and its live endpoints
// (Containers).
nlohmann::ordered_json network_document(const network::NetworkStore& store,
                                        const network::NetworkRecord& net);
// network ls's networks (by name) that the filters select ("key=value":
// driver, id, label, name, scope, type=custom|builtin); as root, what
// containers killed with their monitor left is swept first. UsageError for
// a bad filter.
std::vector<network::NetworkRecord> list_networks(const std::string& store_root,
                                                  const std::vector<std::string>& filters);
// network prune: removes the custom networks no container is configured
// for nor attached to that the label filters select; returns their names.
std::vector<std::string> prune_networks(const std::string& store_root,
                                        const std::vector<std::string>& filters);
// network connect: the container configured for the network (ip: its
// address, "" picked; aliases: its names there) and, while it runs,
// attached now by its monitor. Errors are dockerd's messages (Error),
// NetworkNotFound, NoSuchContainer, UsageError for --ip on a network
// without a configured subnet.
void connect_container(const std::string& store_root, const std::string& network,
                       const std::string& container, const std::string& ip,
                       const std::vector<std::string>& aliases);
// network disconnect (force: also the endpoints a removed container left).
void disconnect_container(const std::string& store_root, const std::string& network,
                          const std::string& container, bool force);

} // namespace strata::cli
