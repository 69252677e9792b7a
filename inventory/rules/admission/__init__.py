"""The admission webhook's pure part: the AdmissionReview v1 contract (`review`), where a pod
may run (`placement`) and the decisions for NADs and pods (`decide`). No I/O, no ORM: the facts
come from read/admission.py, the workflow is services/admission.py, the door is
inventory/webhook.py."""
