# The seed's request fields, set per run by berth-provisioner (TF_VAR_*).
variable "cluster_name" {
  type        = string
  description = "EKS cluster name (a DNS-1123 label of at most 63 characters)."
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version, e.g. 1.33."
}

variable "instance_type" {
  type        = string
  description = "Instance type of the node group."
}

variable "ip_family" {
  type        = string
  description = "ipv4 or ipv6."
  validation {
    condition     = contains(["ipv4", "ipv6"], var.ip_family)
    error_message = "ip_family is ipv4 or ipv6."
  }
}

# What the seed hard-coded: server configuration (terraform_vars / BERTH_TFVAR_*).
variable "region" {
  type        = string
  description = "AWS region."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the control plane and the nodes (at least two zones)."
}

variable "cluster_role_arn" {
  type        = string
  description = "IAM role of the EKS control plane."
}

variable "node_role_arn" {
  type        = string
  description = "IAM role of the nodes."
}

variable "node_count" {
  type        = number
  default     = 2
  description = "Desired nodes in the node group."
}

variable "addon_versions" {
  type        = map(string)
  default     = {}
  description = "Addon name => version (vpc-cni, coredns, kube-proxy, aws-ebs-csi-driver); absent: EKS's default."
}
