# Offline tests of the EKS module: `terraform test` with the AWS provider mocked (its
# schema comes from the installed provider; nothing calls AWS). Run by
# bins/berth-provisioner/tests/examples.rs after `terraform init -backend=false`.

mock_provider "aws" {
  # Ids the provider's own validation accepts downstream (a node group wants `lt-...`).
  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      latest_version = 1
    }
  }
}

variables {
  cluster_name       = "prod-cluster-001"
  kubernetes_version = "1.33"
  instance_type      = "m6gd.large"
  ip_family          = "ipv6"
  region             = "ap-south-1"
  subnet_ids         = ["subnet-a", "subnet-b"]
  cluster_role_arn   = "arn:aws:iam::123456789012:role/EKS_Cluster"
  node_role_arn      = "arn:aws:iam::123456789012:role/EKS_Node"
}

run "the_seed_inputs_reach_the_cluster_and_its_nodes" {
  command = apply

  assert {
    condition     = aws_eks_cluster.this.name == "prod-cluster-001" && aws_eks_cluster.this.version == "1.33"
    error_message = "the cluster's name and version are the request's"
  }
  assert {
    condition     = aws_eks_cluster.this.kubernetes_network_config[0].ip_family == "ipv6"
    error_message = "the cluster's IP family is the request's"
  }
  assert {
    condition     = aws_eks_node_group.nodes.instance_types == tolist(["m6gd.large"])
    error_message = "the nodes' instance type is the request's"
  }
  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].subnet_ids == toset(["subnet-a", "subnet-b"]) && aws_eks_node_group.nodes.subnet_ids == toset(["subnet-a", "subnet-b"])
    error_message = "the network is the configuration's"
  }
  assert {
    condition     = aws_eks_cluster.this.role_arn == var.cluster_role_arn && aws_eks_node_group.nodes.node_role_arn == var.node_role_arn
    error_message = "the roles are the configuration's"
  }
  assert {
    condition     = aws_launch_template.nodes.metadata_options[0].http_tokens == "required" && aws_launch_template.nodes.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "nodes use IMDSv2 only, one hop"
  }
  assert {
    condition     = length(aws_eks_addon.this) == 4 && aws_eks_node_group.nodes.scaling_config[0].desired_size == 2
    error_message = "four addons, two nodes by default"
  }
  assert {
    condition     = output.kubeconfig_command == "aws eks update-kubeconfig --region ap-south-1 --name prod-cluster-001"
    error_message = "the kubeconfig command names the region and the cluster"
  }
}

run "addon_versions_are_pinned_when_given" {
  command = plan

  variables {
    addon_versions = { "vpc-cni" = "v1.19.2-eksbuild.1" }
  }

  assert {
    condition     = aws_eks_addon.this["vpc-cni"].addon_version == "v1.19.2-eksbuild.1"
    error_message = "a given addon version is pinned"
  }
}

run "an_unknown_ip_family_is_refused" {
  command = plan

  variables {
    ip_family = "dual-stack"
  }

  expect_failures = [var.ip_family]
}
